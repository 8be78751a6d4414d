"""Baselines: record today's findings, later report only the new ones.

The file is JSON: ``{"version": 1, "findings": {fingerprint: count}}`` plus a readable
``entries`` list for reviewers. Counts make it a multiset, so two identical findings in
one file need two entries, and fixing one of them does not hide a third.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

from zgcheck.diagnostics import FileResult
from zgcheck.fingerprint import fingerprint, repo_relative, statement_text
from zgcheck.settings import SettingsError

VERSION = 1


def write_baseline(results: list[FileResult], path: str) -> int:
    """Write the fingerprints of every finding in ``results``; returns how many."""
    counts: Counter[str] = Counter()
    entries = []
    for result in results:
        for diag in result.diagnostics:
            key = fingerprint(diag, result.source_lines)
            counts[key] += 1
            entries.append({"fingerprint": key, "file": repo_relative(diag.filename), "code": diag.code,
                            "optimizer": diag.optimizer, "statement": statement_text(diag, result.source_lines)})
    data = {"version": VERSION, "findings": dict(sorted(counts.items())), "entries": entries}
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    return sum(counts.values())


def read_baseline(path: str) -> Counter[str]:
    """Fingerprint counts of a baseline file; a missing or malformed file is a usage error."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise SettingsError(f"cannot read baseline {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise SettingsError(f"baseline {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("findings"), dict):
        raise SettingsError(f"baseline {path} is not a zgcheck baseline (version {VERSION})")
    return Counter({str(k): int(v) for k, v in data["findings"].items()})


def new_findings(results: list[FileResult], baseline: Counter[str]) -> list[FileResult]:
    """Results without the findings the baseline already knows."""
    remaining = Counter(baseline)
    kept = []
    for result in results:
        fresh = []
        for diag in result.diagnostics:
            key = fingerprint(diag, result.source_lines)
            if remaining[key] > 0:
                remaining[key] -= 1
            else:
                fresh.append(diag)
        kept.append(replace(result, diagnostics=tuple(fresh)))
    return kept
