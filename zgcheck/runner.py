"""Checking one file (pure, picklable inputs and outputs) and running over many files."""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Iterable, Iterator

from zgcheck.cache import Cache, content_hash
from zgcheck.diagnostics import Diagnostic, FileProblem, FileResult
from zgcheck.settings import Settings
from zgcheck.sources import decode, might_hold_training_code, read_bytes


def analyse_text(text: str, filename: str, settings: Settings) -> tuple[list[Diagnostic], list[FileProblem]]:
    """Parse and analyse decoded source; syntax errors come back as problems."""
    from zgcheck.parsing import might_have_events

    if not might_have_events(text):
        return [], []  # decided without importing LibCST
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
    if not might_hold_training_code(data):
        return FileResult(path)
    source = decode(path, data)
    if isinstance(source, FileProblem):
        return FileResult(path, problems=(source,))
    return _guarded(path, lambda: analyse_text(source.text, path, settings), source.text)


def _guarded(filename: str, work, text: str) -> FileResult:
    """Run ``work`` for one file; a crash becomes that file's problem, never the run's."""
    try:
        diagnostics, problems = work()
    except RecursionError:
        problem = FileProblem(filename, "internal", "code is nested too deeply to analyse")
        return FileResult(filename, problems=(problem,), parsed=True)
    except Exception as exc:  # noqa: BLE001 - one file's crash must never stop the run
        problem = FileProblem(filename, "internal", f"internal error while analysing: {type(exc).__name__}: {exc}")
        return FileResult(filename, problems=(problem,), parsed=True)
    return FileResult(filename, tuple(diagnostics), tuple(problems), parsed=True, source_lines=tuple(text.splitlines()))


# Below this many files to parse, starting worker processes (each imports LibCST, about
# 0.15 s) costs more than it saves.
PARALLEL_MIN = 16


@dataclass(frozen=True)
class _Candidate:
    """A file that passed the prefilter and missed the cache: it must be parsed."""

    index: int
    path: str
    text: str
    digest: str


def _triage(index: int, path: str, cache: Cache | None) -> FileResult | _Candidate:
    """Everything cheap, done in the parent: read, prefilter, cache lookup, decode."""
    data = read_bytes(path)
    if isinstance(data, FileProblem):
        return FileResult(path, problems=(data,))
    if not might_hold_training_code(data):
        return FileResult(path)
    digest = content_hash(data) if cache is not None else ""
    cached = cache.get(digest, path) if cache is not None else None
    if cached == ():
        return FileResult(path, parsed=True)  # the common hit: nothing to show, skip decoding
    source = decode(path, data)
    if isinstance(source, FileProblem):
        return FileResult(path, problems=(source,))
    if cached is not None:
        return FileResult(path, cached, parsed=True, source_lines=tuple(source.text.splitlines()))
    return _Candidate(index, path, source.text, digest)


def _check_chunk(chunk: list[tuple[str, str]], settings: Settings) -> list[FileResult]:
    """Worker entry point: analyse decoded files. Source lines travel back only when a
    reporter will show them (files with findings), to keep the pickles small."""
    results = []
    for path, text in chunk:
        result = _guarded(path, lambda: analyse_text(text, path, settings), text)
        results.append(result if result.diagnostics else replace(result, source_lines=()))
    return results


def _analyse_all(candidates: list[_Candidate], settings: Settings, jobs: int) -> list[FileResult]:
    """Analyse candidates serially or on a process pool; output order = input order."""
    work = [(c.path, c.text) for c in candidates]
    if jobs <= 1 or len(work) < PARALLEL_MIN:
        return _check_chunk(work, settings)
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    # Several chunks per worker balance uneven files; chunks amortise pickling overhead.
    size = max(1, min(16, len(work) // (jobs * 4)))
    chunks = [work[i:i + size] for i in range(0, len(work), size)]
    try:
        with ProcessPoolExecutor(max_workers=min(jobs, len(chunks))) as pool:
            done = pool.map(_check_chunk, chunks, [settings] * len(chunks))
            return [result for chunk in done for result in chunk]
    except (BrokenProcessPool, OSError):
        # No processes here (sandbox, no /dev/shm) or a worker died: slower, same answer.
        return _check_chunk(work, settings)


def default_jobs() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def run(paths: Iterable[str], settings: Settings, jobs: int = 1, cache_dir: str | None = None) -> Iterator[FileResult]:
    """Check files; results come in the order of ``paths`` whatever ``jobs`` is.

    With ``cache_dir``, files whose bytes were already checked with the same settings
    and zgcheck build are answered from the cache."""
    cache = Cache(cache_dir, settings) if cache_dir is not None else None
    slots = [_triage(i, path, cache) for i, path in enumerate(paths)]
    candidates = [s for s in slots if isinstance(s, _Candidate)]
    for candidate, result in zip(candidates, _analyse_all(candidates, settings, jobs)):
        slots[candidate.index] = result
        # Only files that parsed and were analysed are remembered; problems are retried.
        if cache is not None and result.parsed and not result.problems:
            cache.put(candidate.digest, result.diagnostics)
    if cache is not None:
        cache.save()
    return iter(slots)  # type: ignore[arg-type]


def check_paths(paths: Iterable[str], settings: Settings | None = None, jobs: int = 1,
                cache_dir: str | None = None) -> list[FileResult]:
    """Discover and check files and folders, as `zgcheck check` does (no cache unless
    ``cache_dir`` is given: a library call leaves no files behind)."""
    from zgcheck.discovery import discover

    found = discover(list(paths))
    results = [FileResult(p.filename, problems=(p,)) for p in found.problems]
    return results + list(run(found.files, settings or Settings(), jobs, cache_dir))
