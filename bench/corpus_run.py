"""No-crash run over real code: check every .py file of the given trees and report.

    python bench/corpus_run.py /path/to/tree [more trees] [--jobs 2] [--json out.json]

Unlike `zgcheck check` nothing is excluded (site-packages included). A crash is an
exception escaping check_file or an "internal" problem (a caught crash). Reported:
crashes, problems by kind, findings by code (each listed), total and slowest times.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections import Counter
from concurrent.futures import ProcessPoolExecutor


def python_files(roots: list[str]) -> list[str]:
    """Every *.py file under the roots, symlinks not followed (a tree may loop)."""
    found = []
    for root in roots:
        for folder, _dirs, files in os.walk(root):
            found.extend(os.path.join(folder, name) for name in files if name.endswith(".py"))
    return sorted(found)


def check_one(path: str) -> dict:
    """Check one file in a worker; an escaping exception is recorded, never raised."""
    from zgcheck.runner import check_file
    from zgcheck.settings import Settings

    start = time.perf_counter()
    try:
        result = check_file(path, Settings())
    except BaseException:  # noqa: BLE001 - the point is to count these
        return {"path": path, "seconds": time.perf_counter() - start, "crash": traceback.format_exc()}
    return {
        "path": path,
        "seconds": time.perf_counter() - start,
        "parsed": result.parsed,
        "problems": [(p.kind, p.message) for p in result.problems],
        "findings": [(d.code, d.location.row, d.message) for d in result.diagnostics],
    }


def summarise(records: list[dict], wall: float) -> str:
    """The report: counts first, then every crash and finding, then the slowest files."""
    crashes = [r for r in records if "crash" in r or any(k == "internal" for k, _ in r.get("problems", []))]
    problems = Counter(k for r in records for k, _ in r.get("problems", []))
    codes = Counter(c for r in records for c, _, _ in r.get("findings", []))
    out = [
        f"files: {len(records)}  parsed (passed the prefilter): {sum(bool(r.get('parsed')) for r in records)}",
        f"crashes: {len(crashes)}  problems by kind: {dict(problems)}  findings by code: {dict(codes)}",
        f"wall time: {wall:.1f} s  summed file time: {sum(r['seconds'] for r in records):.1f} s",
    ]
    out += [f"CRASH {r['path']}: {r.get('crash') or r['problems']}" for r in crashes]
    out += [f"PROBLEM {r['path']}: {k}: {m}" for r in records for k, m in r.get("problems", []) if k != "internal"]
    out += [f"FINDING {r['path']}:{row}: {code} {msg}" for r in records for code, row, msg in r.get("findings", [])]
    out += [f"SLOW {r['seconds']:.2f}s {r['path']}" for r in sorted(records, key=lambda r: -r["seconds"])[:10]]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", help="also write every record here")
    args = parser.parse_args(argv)
    files = python_files(args.roots)
    start = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        records = list(pool.map(check_one, files, chunksize=16))
    print(summarise(records, time.perf_counter() - start))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(records, handle)
    return 1 if any("crash" in r for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
