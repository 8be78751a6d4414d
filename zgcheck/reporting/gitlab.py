"""GitLab Code Quality JSON: merge requests show the findings inline.

GitLab needs a fingerprint unique per issue; ours has no line numbers (so an issue keeps
its identity across edits), and repeated identical findings get a counter mixed in.
"""
from __future__ import annotations

import hashlib
import json

from zgcheck.fingerprint import fingerprint, repo_relative
from zgcheck.reporting import RunReport


def _unique(key: str, seen: set[str]) -> str:
    candidate, n = key, 0
    while candidate in seen:
        n += 1
        candidate = hashlib.sha256(f"{key}:{n}".encode()).hexdigest()[:32]
    seen.add(candidate)
    return candidate


def _issue(check: str, description: str, key: str, path: str, begin: int, end: int, severity: str) -> dict:
    return {
        "description": description,
        "check_name": check,
        "fingerprint": key,
        "severity": severity,
        "location": {"path": path, "lines": {"begin": begin, "end": end}},
    }


def write_gitlab(report: RunReport, stream) -> None:
    seen: set[str] = set()
    issues = []
    for problem in report.all_problems:
        key = hashlib.sha256(f"{repo_relative(problem.filename)}\0{problem.message}".encode()).hexdigest()[:32]
        row = max(problem.row, 1)
        issues.append(_issue(f"zgcheck-{problem.kind}", problem.message, _unique(key, seen),
                             repo_relative(problem.filename), row, row, "blocker"))
    for result in report.results:
        for diag in result.diagnostics:
            key = _unique(fingerprint(diag, result.source_lines), seen)
            issues.append(_issue(diag.code, f"{diag.code} {diag.message}", key, repo_relative(diag.filename),
                                 diag.location.row, diag.end_location.row, "major"))
    json.dump(issues, stream, indent=2)
    stream.write("\n")
