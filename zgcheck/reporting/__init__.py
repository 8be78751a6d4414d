"""Reporters: one module per output format. Each takes the run's results and writes text."""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from zgcheck.diagnostics import Diagnostic, FileProblem, FileResult


@dataclass
class RunReport:
    """Everything a reporter needs: results in a stable order plus run-wide problems."""

    results: list[FileResult] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)
    unsafe_fixes: bool = False
    fix_mode: bool = False

    @property
    def fixed(self) -> list[Diagnostic]:
        return [d for r in self.results for d in r.fixed]

    @property
    def fix_notes(self) -> list[str]:
        return [f"{r.filename}: {r.fix_note}" for r in self.results if r.fix_note]

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return [d for r in self.results for d in r.diagnostics]

    @property
    def all_problems(self) -> list[FileProblem]:
        return self.problems + [p for r in self.results for p in r.problems]

    @property
    def return_code(self) -> int:
        return 1 if self.diagnostics or self.all_problems else 0

    def lines_of(self, filename: str) -> tuple[str, ...]:
        """Source lines of a checked file (for fingerprints and code frames)."""
        return next((r.source_lines for r in self.results if r.filename == filename), ())


# format name -> (module, writer function); modules load only when their format is used.
WRITERS = {
    "json": ("json_format", "write_json"),
    "json-lines": ("json_format", "write_json_lines"),
    "github": ("github", "write_github"),
    "sarif": ("sarif", "write_sarif"),
    "junit": ("junit", "write_junit"),
    "gitlab": ("gitlab", "write_gitlab"),
}
FORMATS = ("full", "concise") + tuple(WRITERS)


def render(report: RunReport, fmt: str, stream, color: bool | None = None, quiet: bool = False,
           show_fixes: bool = False) -> None:
    """Write ``report`` to ``stream`` in format ``fmt`` (one of FORMATS)."""
    if fmt in WRITERS:
        module, function = WRITERS[fmt]
        getattr(importlib.import_module(f"zgcheck.reporting.{module}"), function)(report, stream)
        return
    from zgcheck.reporting.text import write_text

    write_text(report, stream, full=(fmt == "full"), color=color, show_fixes=show_fixes, quiet=quiet)
