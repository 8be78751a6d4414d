"""Reporters: one module per output format. Each takes the run's results and writes text."""
from __future__ import annotations

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


FORMATS = ("full", "concise", "json")


def render(report: RunReport, fmt: str, stream, color: bool | None = None, show_fixes: bool = False) -> None:
    if fmt == "json":
        from zgcheck.reporting.json_format import write_json

        write_json(report, stream)
    else:
        from zgcheck.reporting.text import write_text

        write_text(report, stream, full=(fmt == "full"), color=color, show_fixes=show_fixes)
