"""JSON output with ruff's field names, so tools that read ruff's JSON read ours.

``json`` writes one array; ``json-lines`` one object per line (for streaming tools).
"""
from __future__ import annotations

import json
import os

from zgcheck.diagnostics import Diagnostic, Fix, FileProblem, Location
from zgcheck.reporting import RunReport


def _location(location: Location) -> dict:
    return {"column": location.column, "row": location.row}


def fix_dict(fix: Fix | None) -> dict | None:
    """A Fix as ruff serialises it: applicability, message and edits."""
    if fix is None:
        return None
    return {
        "applicability": fix.applicability,
        "edits": [
            {"content": e.content, "end_location": _location(e.end_location), "location": _location(e.location)}
            for e in fix.edits
        ],
        "message": fix.message,
    }


def _diagnostic(diag: Diagnostic) -> dict:
    from zgcheck.rules import RULES_BY_CODE

    rule = RULES_BY_CODE.get(diag.code)
    return {
        "cell": diag.cell,
        "code": diag.code,
        "end_location": _location(diag.end_location),
        "filename": os.path.abspath(diag.filename),
        "fix": fix_dict(diag.fix),
        "location": _location(diag.location),
        "message": diag.message,
        "noqa_row": diag.location.row,
        "url": rule.url if rule else None,
    }


def _problem(problem: FileProblem) -> dict:
    row, column = max(problem.row, 1), max(problem.column, 1)
    return {
        "cell": problem.cell,
        "code": None,
        "end_location": {"column": column, "row": row},
        "filename": os.path.abspath(problem.filename),
        "fix": None,
        "location": {"column": column, "row": row},
        "message": f"{problem.kind}: {problem.message}",
        "noqa_row": None,
        "url": None,
    }


def items(report: RunReport) -> list[dict]:
    """Problems first, then diagnostics, each as a ruff-shaped dict."""
    return [_problem(p) for p in report.all_problems] + [_diagnostic(d) for d in report.diagnostics]


def write_json(report: RunReport, stream) -> None:
    json.dump(items(report), stream, indent=2)
    stream.write("\n")


def write_json_lines(report: RunReport, stream) -> None:
    for item in items(report):
        stream.write(json.dumps(item) + "\n")
