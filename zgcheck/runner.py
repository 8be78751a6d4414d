"""Checking one file (pure, picklable inputs and outputs) and running over many files."""
from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from zgcheck.cache import Cache, content_hash
from zgcheck.diagnostics import Diagnostic, FileProblem, FileResult
from zgcheck.settings import Settings
from zgcheck.sources import decode, might_hold_training_code, read_bytes, source_lines

Analysis = tuple[list[Diagnostic], list[FileProblem]]

if TYPE_CHECKING:
    from zgcheck.config import Resolver


def analyse_text(text: str, filename: str, settings: Settings,
                 used: dict[str, str] | None = None) -> tuple[list[Diagnostic], list[FileProblem]]:
    """Parse and analyse decoded source; syntax errors come back as problems.

    When ``filename`` is a file on disk, calls into other modules of its project are
    resolved; ``used`` receives the files read for that (path -> content hash)."""
    from zgcheck.parsing import precheck

    checked = precheck(filename, text, factories=settings.optimizer_factories)
    if used is not None:
        used.update(checked.consulted)  # the decision read helpers of other modules
    if not checked.has_events:
        # No step and no .grad: no rule can fire, so LibCST is never imported. Only
        # unused noqa directives (ZG100) can still be reported.
        if "noqa" not in text.lower():
            return [], []
        return _suppressed([], text, filename, frozenset(settings.select) - settings.ignored_in(filename)), []
    from zgcheck.loops import extract_regions
    from zgcheck.ordering import analyse_region
    from zgcheck.parsing import parse
    from zgcheck.recognize import collect_facts
    from zgcheck.rules import RULES, RULES_BY_CODE, RuleContext

    parsed = checked.problem or parse(filename, text, checked.sliced, checked.layout)
    if isinstance(parsed, FileProblem):
        return [], [parsed]
    facts = collect_facts(parsed, settings.optimizer_factories, settings.zeroing_engines)
    if facts.other_framework:
        return [], []
    resolver = None
    if os.path.isfile(filename):
        from zgcheck.project import Resolver, project

        resolver = Resolver(project(), filename, facts, used if used is not None else {})
    regions = extract_regions(parsed, facts, resolver)
    orderings = [o for region in regions for o in analyse_region(region, facts)]
    ctx = RuleContext(filename, facts, regions, orderings, parsed)
    enabled = frozenset(settings.select) - settings.ignored_in(filename)
    found: dict[tuple[str, int, int], Diagnostic] = {}
    for rule in RULES:
        if rule.code not in enabled:
            continue
        for diag in rule.check(ctx):
            found.setdefault((diag.code, diag.location.row, diag.location.column), diag)
    kept = [d for d in found.values()
            if not any((code, d.location.row, d.location.column) in found for code in RULES_BY_CODE[d.code].yields_to)]
    return _suppressed(kept, text, filename, enabled), []


def _suppressed(diagnostics: list[Diagnostic], text: str, filename: str, enabled: frozenset[str]) -> list[Diagnostic]:
    """Apply ``# noqa`` directives (and report unused ones as ZG100)."""
    from zgcheck.rules import RULES_BY_CODE
    from zgcheck.suppression import suppress

    return suppress(diagnostics, text, filename, enabled, frozenset(RULES_BY_CODE))


def check_source(text: str, filename: str = "<string>", settings: Settings | None = None) -> FileResult:
    """Check Python source text; never raises for bad input."""
    settings = settings or Settings()
    if not might_hold_training_code(text.encode("utf-8", "surrogatepass")):
        return FileResult(filename)
    return _guarded(filename, lambda used: analyse_text(text, filename, settings, used), text)


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
    if path.endswith(".ipynb"):
        return check_notebook(path, data, settings)
    source = decode(path, data)
    if isinstance(source, FileProblem):
        return FileResult(path, problems=(source,))
    return _guarded(path, lambda used: analyse_text(source.text, path, settings, used), source.text)


def check_notebook(path: str, data: bytes, settings: Settings) -> FileResult:
    """Code cells as one module; findings located by cell; a broken cell is reported alone."""
    from zgcheck.notebooks import cell_source, read_notebook, relocate

    nb = read_notebook(path, data)
    if isinstance(nb, FileProblem):
        return FileResult(path, problems=(nb,))
    result = _guarded(path, lambda used: analyse_text(nb.text, path, settings, used), nb.text)
    cells = [tuple(source_lines(cell_source(cell))) for cell in nb.raw["cells"]]
    return replace(
        result,
        diagnostics=tuple(relocate(d, nb) for d in result.diagnostics),
        problems=nb.broken + result.problems,
        cell_lines=tuple(cells),
    )


# LibCST and the analysis recurse once per nesting level. The default limit (1,000 Python
# frames) is too low for real files such as pydoc_data/topics.py (hundreds of implicitly
# concatenated strings), and raising it on the main thread's 8 MB C stack risks a segfault.
# So each file is analysed on a thread with a large stack (virtual memory: only the pages
# used are committed) and a limit that stack can hold.
STACK_BYTES = 512 * 1024 * 1024
RECURSION_LIMIT = 20_000


def _guarded(filename: str, work: Callable[[dict[str, str]], Analysis], text: str) -> FileResult:
    """Run ``work`` on a deep stack; every exception becomes a problem of this file.
    ``work`` records the other files it read in the dict it is handed."""
    used: dict[str, str] = {}
    try:
        diagnostics, problems = _on_deep_stack(lambda: work(used))
    except RecursionError:
        problem = FileProblem(filename, "limit", "code is nested too deeply to analyse; skipped")
        return FileResult(filename, problems=(problem,), parsed=True)
    except Exception as exc:  # noqa: BLE001 - one file's crash must never stop the run
        detail = str(exc).splitlines()[0] if str(exc) else ""
        problem = FileProblem(filename, "internal", f"internal error while analysing: {type(exc).__name__}: {detail}")
        return FileResult(filename, problems=(problem,), parsed=True)
    return FileResult(filename, tuple(diagnostics), tuple(problems), parsed=True, source_lines=tuple(source_lines(text)),
                      dependencies=tuple(sorted(used.items())))


@dataclass(frozen=True)
class FixMode:
    """What to do with fixes: include unsafe ones; write files (False for --diff)."""

    unsafe: bool = False
    write: bool = True


def fix_source(text: str, filename: str, settings: Settings, unsafe: bool = False):
    """Fix decoded source text; returns a :class:`zgcheck.fixes.FixResult`."""
    from zgcheck.fixes import fix_text

    def check(current: str) -> list[Diagnostic]:
        diagnostics, problems = analyse_text(current, filename, settings)
        return [] if problems else diagnostics

    return fix_text(text, filename, check, unsafe)


def fix_file(path: str, settings: Settings, mode: FixMode) -> FileResult:
    """Check one file, fix what can be proven safe, write it atomically (unless --diff)."""
    first = check_file(path, settings)
    if first.problems or not any(d.fix for d in first.diagnostics):
        return first
    try:
        if path.endswith(".ipynb"):
            return _on_deep_stack(lambda: fix_notebook(path, settings, mode, first))
        return _on_deep_stack(lambda: _fix_python(path, settings, mode, first))
    except Exception as exc:  # noqa: BLE001 - a crash while fixing leaves the file untouched
        detail = str(exc).splitlines()[0] if str(exc) else ""
        return replace(first, fix_note=f"not fixed: internal error while fixing: {type(exc).__name__}: {detail}")


def _fix_python(path: str, settings: Settings, mode: FixMode, first: FileResult) -> FileResult:
    data = read_bytes(path)  # read again: check_file keeps no bytes around
    source = decode(path, data) if not isinstance(data, FileProblem) else data
    if isinstance(source, FileProblem):
        return replace(first, fix_note=f"not fixed: the file changed during the run ({source.message})")
    outcome = fix_source(source.text, path, settings, mode.unsafe)
    if not outcome.fixed:
        return first
    if outcome.refused:
        return replace(first, fix_note=f"not fixed: {outcome.refused}")
    diff = unified_diff(path, source.text, outcome.text)
    note = ""
    if mode.write:
        note = write_atomic(path, outcome.text, source)
    if note:
        return replace(first, fix_note=note)
    remaining, _ = analyse_text(outcome.text, path, settings)
    lines = tuple(source_lines(outcome.text))
    return replace(first, diagnostics=tuple(remaining), fixed=outcome.fixed, diff=diff, source_lines=lines)


def fix_notebook(path: str, settings: Settings, mode: FixMode, first: FileResult) -> FileResult:
    """Fix a notebook's cells; only changed cells' sources change in the JSON."""
    from zgcheck.notebooks import cell_sources, read_notebook, rewrite
    from zgcheck.sources import Source

    data = read_bytes(path)
    nb = read_notebook(path, data)
    outcome = fix_source(nb.text, path, settings, mode.unsafe)
    if not outcome.fixed:
        return first
    if outcome.refused:
        return replace(first, fix_note=f"not fixed: {outcome.refused}")
    raw_text = data.decode("utf-8-sig")
    sources = cell_sources(nb, outcome.text)
    new_text = rewrite(nb, raw_text, sources) if sources is not None else None
    if new_text is None:
        return replace(first, fix_note="not fixed: the notebook's JSON formatting could not be reproduced exactly")
    note = write_atomic(path, new_text, Source(path, new_text, "utf-8", data.startswith(b"\xef\xbb\xbf"))) if mode.write else ""
    if note:
        return replace(first, fix_note=note)
    after = check_notebook(path, new_text.encode("utf-8"), settings)
    return replace(after, fixed=outcome.fixed, diff=unified_diff(path, raw_text, new_text))


def unified_diff(path: str, before: str, after: str) -> str:
    import difflib

    lines = difflib.unified_diff(source_lines(before, keepends=True), source_lines(after, keepends=True), path, path)
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def write_atomic(path: str, text: str, source) -> str:
    """Write via a temporary file in the same folder and os.replace; "" or why not."""
    import os
    import stat
    import tempfile

    target = os.path.realpath(path)
    if os.path.islink(path) and not target.startswith(os.path.realpath(os.getcwd()) + os.sep):
        return "not fixed: it is a symlink to a file outside the current tree"
    encoding = "utf-8-sig" if source.bom else source.encoding
    try:
        data = text.encode(encoding)
        mode = stat.S_IMODE(os.stat(target).st_mode)
        handle = tempfile.NamedTemporaryFile(dir=os.path.dirname(target), prefix=".zgcheck-", delete=False)
        try:
            with handle:
                handle.write(data)
            os.chmod(handle.name, mode)
            os.replace(handle.name, target)
        except BaseException:
            os.unlink(handle.name)
            raise
    except (OSError, UnicodeEncodeError) as exc:
        return f"not fixed: cannot write the file ({getattr(exc, 'strerror', None) or exc})"
    return ""


def settings_for(settings: "Settings | Resolver", path: str) -> Settings:
    """Fixed settings, or the ones a Resolver finds for ``path`` (nearest configuration)."""
    return settings if isinstance(settings, Settings) else settings.for_path(path)


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


# Below this many files to parse, starting worker processes (each imports LibCST, about
# 0.15 s) costs more than it saves.
PARALLEL_MIN = 16


@dataclass(frozen=True)
class _Candidate:
    """A file that passed the prefilter and missed the cache: it must be analysed.
    ``payload`` is the decoded text, or a notebook's raw bytes."""

    index: int
    path: str
    payload: str | bytes
    settings: Settings
    cache_key: str


def _entry_key(digest: str, path: str, settings: Settings) -> str:
    """Per-file ignores make the same bytes give different results at different paths."""
    if not settings.per_file_ignores:
        return digest
    return f"{digest}:{','.join(sorted(settings.ignored_in(path)))}"


def _triage(index: int, path: str, settings: Settings, cache: Cache | None) -> FileResult | _Candidate:
    """Everything cheap, done in the parent: read, prefilter, cache lookup, decode."""
    data = read_bytes(path)
    if isinstance(data, FileProblem):
        return FileResult(path, problems=(data,))
    if not might_hold_training_code(data):
        return FileResult(path)
    if path.endswith(".ipynb"):
        return _Candidate(index, path, data, settings, "")  # notebooks are not cached
    key = _entry_key(content_hash(data), path, settings) if cache is not None else ""
    cached = cache.get(key, path) if cache is not None else None
    if cached == ():
        return FileResult(path, parsed=True)  # the common hit: nothing to show, skip decoding
    source = decode(path, data)
    if isinstance(source, FileProblem):
        return FileResult(path, problems=(source,))
    if cached is not None:
        return FileResult(path, cached, parsed=True, source_lines=tuple(source_lines(source.text)))
    return _Candidate(index, path, source.text, settings, key)


def _check_one(path: str, payload: str | bytes, settings: Settings) -> FileResult:
    """Analyse one decoded file (or notebook bytes)."""
    if isinstance(payload, bytes):
        return check_notebook(path, payload, settings)
    return _guarded(path, lambda used: analyse_text(payload, path, settings, used), payload)


def _check_chunk(chunk: list[tuple[str, str | bytes, Settings]]) -> list[FileResult]:
    """Worker entry point. Source lines travel back only when a reporter will show them
    (files with findings), to keep the pickles small."""
    results = []
    for path, payload, settings in chunk:
        result = _check_one(path, payload, settings)
        results.append(result if result.diagnostics else replace(result, source_lines=()))  # dependencies travel
    return results


def _analyse_all(candidates: list[_Candidate], jobs: int) -> list[FileResult]:
    """Analyse candidates serially or on a process pool; output order = input order."""
    work = [(c.path, c.payload, c.settings) for c in candidates]
    if jobs <= 1 or len(work) < PARALLEL_MIN:
        return _check_chunk(work)
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    chunks = _balanced_chunks([len(payload) for _, payload, _ in work], jobs)
    try:
        with ProcessPoolExecutor(max_workers=min(jobs, len(chunks)), mp_context=_pool_context()) as pool:
            results: list = [None] * len(work)
            for chunk, done in zip(chunks, pool.map(_check_chunk, [[work[i] for i in chunk] for chunk in chunks])):
                for index, result in zip(chunk, done):
                    results[index] = result
            return results
    except (BrokenProcessPool, OSError):
        # No processes here (sandbox, no /dev/shm) or a worker died: slower, same answer.
        return _check_chunk(work)


def _pool_context():
    """Fork (cheapest) from a process with one thread, as the CLI is; a process with more
    (a program that imported torch, whose native threads hold locks) forks workers from a
    fresh server instead: a fork there can hang for ever on a lock no thread will release."""
    import multiprocessing
    import os

    try:
        threads = len(os.listdir("/proc/self/task"))
    except OSError:
        import threading

        threads = threading.active_count() + (1 if "torch" in sys.modules else 0)
    methods = multiprocessing.get_all_start_methods()
    if threads <= 1 and "fork" in methods:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _balanced_chunks(sizes: list[int], jobs: int) -> list[list[int]]:
    """Indexes of the work in chunks for the pool: largest files first (a big file handed
    out last keeps one worker busy while the others idle), each chunk about 1/8 of a
    worker's share of the bytes and at most 16 files (chunks amortise pickling)."""
    order = sorted(range(len(sizes)), key=lambda i: -sizes[i])
    budget = max(1, sum(sizes) // (jobs * 8))
    chunks: list[list[int]] = []
    current: list[int] = []
    filled = 0
    for index in order:
        current.append(index)
        filled += sizes[index]
        if filled >= budget or len(current) >= 16:
            chunks.append(current)
            current, filled = [], 0
    if current:
        chunks.append(current)
    return chunks


def default_jobs() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def run(paths: Iterable[str], settings: "Settings | Resolver", fix: FixMode | None = None, jobs: int = 1,
        cache_dir: str | None = None) -> Iterator[FileResult]:
    """Check (or fix) files; results come in the order of ``paths`` whatever ``jobs`` is.

    With ``cache_dir``, files whose bytes were already checked with the same settings and
    zgcheck build are answered from the cache. Fixing writes files: it runs serially,
    without the cache."""
    paths = list(paths)
    from zgcheck.project import reset_project

    reset_project()  # a file written since an earlier run in this process must count
    if fix is not None:
        return (fix_file(path, settings_for(settings, path), fix) for path in paths)
    caches: dict[Settings, Cache] = {}
    slots: list[FileResult | _Candidate] = []
    for index, path in enumerate(paths):
        chosen = settings_for(settings, path)
        cache = None
        if cache_dir is not None:
            cache = caches.get(chosen) or caches.setdefault(chosen, Cache(cache_dir, chosen))
        slots.append(_triage(index, path, chosen, cache))
    candidates = [s for s in slots if isinstance(s, _Candidate)]
    for candidate, result in zip(candidates, _analyse_all(candidates, jobs)):
        slots[candidate.index] = result
        # Only files that parsed and were analysed are remembered; problems are retried.
        if candidate.cache_key and result.parsed and not result.problems:
            caches[candidate.settings].put(candidate.cache_key, result.diagnostics, candidate.path, result.dependencies)
    for cache in caches.values():
        cache.save()
    return iter(slots)  # type: ignore[arg-type]


def check_paths(paths: Iterable[str], settings: Settings | None = None, jobs: int = 1,
                cache_dir: str | None = None) -> list[FileResult]:
    """Discover and check files and folders, as `zgcheck check` does (no cache unless
    ``cache_dir`` is given: a library call leaves no files behind)."""
    from zgcheck.discovery import discover

    found = discover(list(paths))
    results = [FileResult(p.filename, problems=(p,)) for p in found.problems]
    return results + list(run(found.files, settings or Settings(), None, jobs, cache_dir))
