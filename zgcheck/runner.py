"""Checking one file (pure, picklable inputs and outputs) and running over many files."""
from __future__ import annotations

import sys
import threading
from typing import Callable, Iterable, Iterator

from zgcheck.diagnostics import Diagnostic, FileProblem, FileResult
from zgcheck.settings import Settings
from zgcheck.sources import decode, might_hold_training_code, read_bytes

Analysis = tuple[list[Diagnostic], list[FileProblem]]


def analyse_text(text: str, filename: str, settings: Settings) -> tuple[list[Diagnostic], list[FileProblem]]:
    """Parse and analyse decoded source; syntax errors come back as problems."""
    from zgcheck.loops import extract_regions
    from zgcheck.ordering import analyse_region
    from zgcheck.parsing import parse
    from zgcheck.recognize import collect_facts
    from zgcheck.rules import RULES, RuleContext

    parsed = parse(filename, text)
    if isinstance(parsed, FileProblem):
        return [], [parsed]
    facts = collect_facts(parsed)
    if facts.other_framework:
        return [], []
    regions = extract_regions(parsed, facts)
    orderings = [o for region in regions for o in analyse_region(region, facts)]
    ctx = RuleContext(filename, facts, regions, orderings)
    found: dict[tuple[str, int, int], Diagnostic] = {}
    for rule in RULES:
        if not settings.enabled(rule.code):
            continue
        for diag in rule.check(ctx):
            found.setdefault((diag.code, diag.location.row, diag.location.column), diag)
    return sorted(found.values(), key=Diagnostic.sort_key), []


def check_source(text: str, filename: str = "<string>", settings: Settings | None = None) -> FileResult:
    """Check Python source text; never raises for bad input."""
    settings = settings or Settings()
    if not might_hold_training_code(text.encode("utf-8", "surrogatepass")):
        return FileResult(filename)
    return _guarded(filename, lambda: analyse_text(text, filename, settings), text)


def check_file(path: str, settings: Settings) -> FileResult:
    """Read, prefilter, decode and check one file. Every failure is a value."""
    data = read_bytes(path)
    if isinstance(data, FileProblem):
        return FileResult(path, problems=(data,))
    return check_bytes(data, path, settings)


def check_bytes(data: bytes, path: str, settings: Settings) -> FileResult:
    """Prefilter, decode and check a file's bytes. Every failure is a value."""
    if not might_hold_training_code(data):
        return FileResult(path)
    source = decode(path, data)
    if isinstance(source, FileProblem):
        return FileResult(path, problems=(source,))
    return _guarded(path, lambda: analyse_text(source.text, path, settings), source.text)


# LibCST and the analysis recurse once per nesting level. The default limit (1,000 Python
# frames) is too low for real files such as pydoc_data/topics.py (hundreds of implicitly
# concatenated strings), and raising it on the main thread's 8 MB C stack risks a segfault.
# So each file is analysed on a thread with a large stack (virtual memory: only the pages
# used are committed) and a limit that stack can hold.
STACK_BYTES = 512 * 1024 * 1024
RECURSION_LIMIT = 20_000


def _guarded(filename: str, work: Callable[[], Analysis], text: str) -> FileResult:
    """Run ``work`` on a deep stack; every exception becomes a problem of this file."""
    try:
        diagnostics, problems = _on_deep_stack(work)
    except RecursionError:
        problem = FileProblem(filename, "limit", "code is nested too deeply to analyse; skipped")
        return FileResult(filename, problems=(problem,), parsed=True)
    except Exception as exc:  # noqa: BLE001 - one file's crash must never stop the run
        detail = str(exc).splitlines()[0] if str(exc) else ""
        problem = FileProblem(filename, "internal", f"internal error while analysing: {type(exc).__name__}: {detail}")
        return FileResult(filename, problems=(problem,), parsed=True)
    return FileResult(filename, tuple(diagnostics), tuple(problems), parsed=True, source_lines=tuple(text.splitlines()))


def _on_deep_stack(work: Callable[[], Analysis]) -> Analysis:
    """Call ``work`` on a fresh thread with a big stack; return its value or raise its error."""
    outcome: list = []

    def target() -> None:
        previous = sys.getrecursionlimit()
        sys.setrecursionlimit(max(previous, RECURSION_LIMIT))
        try:
            outcome.append((True, work()))
        except BaseException as exc:  # noqa: BLE001 - handed back to the calling thread
            outcome.append((False, exc))
        finally:
            sys.setrecursionlimit(previous)

    old_size = threading.stack_size(STACK_BYTES)
    try:
        thread = threading.Thread(target=target, name="zgcheck-analyse")
        thread.start()
    finally:
        threading.stack_size(old_size)
    thread.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def run(paths: Iterable[str], settings: Settings) -> Iterator[FileResult]:
    """Check files in order. (A process pool and a cache plug in here.)"""
    for path in paths:
        yield check_file(path, settings)


def check_paths(paths: Iterable[str], settings: Settings | None = None) -> list[FileResult]:
    """Discover and check files and folders, as `zgcheck check` does."""
    from zgcheck.discovery import discover

    found = discover(list(paths))
    results = [FileResult(p.filename, problems=(p,)) for p in found.problems]
    return results + list(run(found.files, settings or Settings()))
