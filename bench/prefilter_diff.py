"""Differential check of the prefilters: on real trees, do they change any result?

    python bench/prefilter_diff.py /path/to/tree [more trees] [--jobs 2]

Every .py file that the old, loose byte test lets through (`.grad`, or both `backward` and
`step` anywhere) is checked twice: as zgcheck checks it (byte regex, CPython prefilter,
sliced LibCST input) and with every file analysed whole by LibCST. Any difference in
findings or problems is printed; the exit code is 1 if there is one. Also printed: how many
files each stage lets through, and the time of both ways.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor


def _loose(data: bytes) -> bool:
    return b".grad" in data or (b"backward" in data and b"step" in data)


def _files(roots: list[str]) -> list[str]:
    found = []
    for root in roots:
        for folder, _dirs, names in os.walk(root):
            found.extend(os.path.join(folder, n) for n in names if n.endswith(".py"))
    return sorted(found)


def _summary(result) -> tuple:
    return (tuple((d.code, d.location.row, d.location.column, d.message) for d in result.diagnostics),
            tuple((p.kind, p.message) for p in result.problems))


def _one(path: str) -> dict:
    from zgcheck import parsing, runner
    from zgcheck.prefilter import EventScan
    from zgcheck.settings import Settings
    from zgcheck.sources import decode, might_hold_training_code

    with open(path, "rb") as handle:
        data = handle.read()
    if not _loose(data):
        return {"path": path, "loose": False}
    record = {"path": path, "loose": True, "bytes": might_hold_training_code(data)}
    source = decode(path, data)
    if hasattr(source, "text"):
        try:
            record["ast"] = parsing.precheck(path, source.text).has_events
        except Exception:  # noqa: BLE001 - counted as passing
            record["ast"] = True
    settings = Settings()
    start = time.perf_counter()
    fast = runner.check_bytes(data, path, settings)
    record["fast_s"] = time.perf_counter() - start
    original = (runner.might_hold_training_code, EventScan.can_fire, EventScan.sliced)
    runner.might_hold_training_code = _loose
    EventScan.can_fire = lambda self: True
    EventScan.sliced = lambda self: (None, set())
    try:
        start = time.perf_counter()
        whole = runner.check_bytes(data, path, settings)
        record["whole_s"] = time.perf_counter() - start
    finally:
        runner.might_hold_training_code, EventScan.can_fire, EventScan.sliced = original
    record["fast"], record["whole"] = _summary(fast), _summary(whole)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    files = _files(args.roots)
    with ProcessPoolExecutor(args.jobs) as pool:
        records = [r for r in pool.map(_one, files, chunksize=4) if r["loose"]]
    differ = [r for r in records if r["fast"] != r["whole"]]
    print(f"files: {len(files)}; old byte test: {len(records)}; byte regex: {sum(r['bytes'] for r in records)}; "
          f"CPython prefilter: {sum(bool(r.get('ast')) and r['bytes'] for r in records)}")
    print(f"with findings (whole analysis): {sum(bool(r['whole'][0]) for r in records)}; differences: {len(differ)}")
    print(f"time: prefiltered {sum(r['fast_s'] for r in records):.1f} s, whole {sum(r['whole_s'] for r in records):.1f} s")
    for r in differ:
        print(f"DIFF {r['path']}\n  prefiltered: {r['fast']}\n  whole:       {r['whole']}")
    for r in sorted(records, key=lambda r: -r["fast_s"])[:5]:
        print(f"SLOW {r['fast_s']:.2f} s (whole {r['whole_s']:.2f} s) {r['path']}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
