"""JSON output with ruff's field names, so tools that read ruff's JSON read ours."""
from __future__ import annotations

import json
import os

from zgcheck.diagnostics import Diagnostic, FileProblem
from zgcheck.reporting import RunReport


def fix_json(fix) -> dict | None:
    """A Fix as ruff writes it: applicability, message and edits."""
    if fix is None:
        return None
    return {
        "applicability": fix.applicability,
        "edits": [
            {
                "content": e.content,
                "end_location": {"column": e.end_location.column, "row": e.end_location.row},
                "location": {"column": e.location.column, "row": e.location.row},
            }
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
        "end_location": {"column": diag.end_location.column, "row": diag.end_location.row},
        "filename": os.path.abspath(diag.filename),
        "fix": fix_json(diag.fix),
        "location": {"column": diag.location.column, "row": diag.location.row},
        "message": diag.message,
        "noqa_row": diag.location.row,
        "url": rule.url if rule else None,
    }


def _problem(problem: FileProblem) -> dict:
    row, column = max(problem.row, 1), max(problem.column, 1)
    return {
        "cell": None,
        "code": None,
        "end_location": {"column": column, "row": row},
        "filename": os.path.abspath(problem.filename),
        "fix": None,
        "location": {"column": column, "row": row},
        "message": f"{problem.kind}: {problem.message}",
        "noqa_row": None,
        "url": None,
    }


def write_json(report: RunReport, stream) -> None:
    items = [_problem(p) for p in report.all_problems] + [_diagnostic(d) for d in report.diagnostics]
    json.dump(items, stream, indent=2)
    stream.write("\n")
