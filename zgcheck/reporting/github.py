"""GitHub Actions workflow commands: each finding becomes an annotation on the PR diff.

Escaping follows the runner's rules: in the message ``%``, CR and LF are percent-encoded;
in properties (file, title) ``:`` and ``,`` are too, since they delimit properties.
"""
from __future__ import annotations

from zgcheck.reporting import RunReport
from zgcheck.reporting.text import _relative


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _command(props: list[tuple[str, object]], message: str) -> str:
    joined = ",".join(f"{key}={escape_property(str(value))}" for key, value in props)
    return f"::error {joined}::{escape_data(message)}"


def write_github(report: RunReport, stream) -> None:
    from zgcheck.rules import RULES_BY_CODE

    for problem in report.all_problems:
        props = [("file", _relative(problem.filename)), ("line", max(problem.row, 1)), ("col", max(problem.column, 1))]
        stream.write(_command(props + [("title", f"zgcheck: {problem.kind} problem")], problem.message) + "\n")
    for diag in report.diagnostics:
        rule = RULES_BY_CODE.get(diag.code)
        props = [
            ("file", _relative(diag.filename)), ("line", diag.location.row), ("col", diag.location.column),
            ("endLine", diag.end_location.row), ("endColumn", diag.end_location.column),
            ("title", f"{diag.code} ({rule.name})" if rule else diag.code),
        ]
        stream.write(_command(props, f"{diag.code} {diag.message}") + "\n")
