"""The human report: `path:line:col: CODE message`, a code frame marking the events, a summary.

rich is used only here (and in the CLI); colour is off when the stream is not a
terminal or NO_COLOR is set (rich's own rules).
"""
from __future__ import annotations

import os
from collections import Counter

from zgcheck.diagnostics import Diagnostic, FileResult
from zgcheck.reporting import RunReport

LABELS = {"zero": "zero", "backward": "backward", "step": "step", "manual": "update", "zero_ref": "not called"}


_CONTROL = {7: None, 8: None, 11: None, 12: None, 13: None}


class _Writer:
    """Lines of (text, style) segments. Without colour (a pipe, a file, pre-commit) the
    text is written as is, which is exactly what rich would print, and rich (~40 ms to
    import) is not loaded; otherwise rich renders the styles."""

    def __init__(self, stream, color: bool | None) -> None:
        self.stream = self.file = stream  # `file`, as rich's Console names it
        self.console = None
        if color or (color is None and _maybe_styled(stream)):
            from rich.console import Console

            self.console = Console(file=stream, highlight=False, soft_wrap=True, force_terminal=color,
                                   no_color=(color is False) or None)

    def print(self, *parts: "str | tuple[str, str]") -> None:
        if self.console is None:
            text = "".join(p if isinstance(p, str) else p[0] for p in parts)
            # As rich does: control characters dropped, tabs expanded to 8 columns.
            self.stream.write(text.translate(_CONTROL).expandtabs(8) + "\n")
            return
        from rich.text import Text

        self.console.print(Text.assemble(*parts))


def _maybe_styled(stream) -> bool:
    """Could rich emit styles here? A terminal, or the variables that force it."""
    if os.environ.get("FORCE_COLOR") or os.environ.get("TTY_COMPATIBLE") or os.environ.get("TTY_INTERACTIVE"):
        return True
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _glyphs(stream) -> dict[str, str]:
    """Box-drawing glyphs when the stream can encode them, ASCII otherwise."""
    try:
        "│┆←×".encode(getattr(stream, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return {"bar": "|", "gap": ":", "arrow": "<-", "times": "x"}
    return {"bar": "│", "gap": "┆", "arrow": "←", "times": "×"}


def _relative(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def _frame(diag: Diagnostic, lines: tuple[str, ...]) -> list[tuple[int, str, str]]:
    marks: dict[int, str] = {}
    for event in diag.related:
        marks.setdefault(event.line, LABELS.get(event.label, event.label))
    marks[diag.location.row] = marks.get(diag.location.row, "here")
    rows = []
    for number in sorted(marks):
        if 1 <= number <= len(lines):
            rows.append((number, lines[number - 1].rstrip(), marks[number]))
    return rows


def write_text(report: RunReport, stream, full: bool = True, color: bool | None = None, show_fixes: bool = False,
               quiet: bool = False) -> None:
    """Diagnostics (with code frames when ``full``) and, unless ``quiet``, a summary line."""
    if not (report.diagnostics or report.all_problems or report.fix_notes or report.fixed):
        # The pre-commit common case: one plain line, so importing rich (~15 ms) is skipped.
        checked = len(report.results)
        if not quiet:
            stream.write(f"All checks passed ({checked} file{'s' if checked != 1 else ''} checked).\n")
        return
    console = _Writer(stream, color)
    for problem in report.all_problems:
        where = f"{_relative(problem.filename)}:{problem.row}:{problem.column}:" if problem.row else f"{_relative(problem.filename)}:"
        console.print((where, "bold"), " ", ("error", "bold red"), f": {problem.message}")
    for note in report.fix_notes:
        console.print(("warning", "bold yellow"), f": {note}")
    for result in report.results:
        for diag in result.diagnostics:
            _print_diagnostic(console, diag, result, full)
    if show_fixes and report.fixed:
        console.print(f"Fixed {len(report.fixed)} finding{'s' if len(report.fixed) != 1 else ''}:")
        for result in report.results:
            for code, n in sorted(Counter(d.code for d in result.fixed).items()):
                console.print(f"- {_relative(result.filename)}: {n} {_glyphs(console.file)['times']} {code}")
    if not quiet:
        _summary(console, report)


def _print_diagnostic(console: "_Writer", diag: Diagnostic, result: FileResult, full: bool) -> None:
    cell = f"cell {diag.cell}:" if diag.cell is not None else ""
    where = f"{_relative(diag.filename)}:{cell}{diag.location.row}:{diag.location.column}:"
    console.print((where, "bold"), " ", (diag.code, "bold red"), " ", diag.message)
    lines = result.cell_lines[diag.cell - 1] if diag.cell is not None and result.cell_lines else result.source_lines
    if not full or not lines:
        return
    rows = _frame(diag, lines)
    glyph = _glyphs(console.file)
    width = len(str(rows[-1][0])) if rows else 1
    previous = None
    for number, line, label in rows:
        if previous is not None and number > previous + 1:
            console.print((" " * width + " " + glyph["gap"], "dim"))
        style = "bold red" if number == diag.location.row else "cyan"
        console.print((f"{number:>{width}} {glyph['bar']} ", "dim"), line, "  ", (f"{glyph['arrow']} {label}", style))
        previous = number
    console.print()


def _summary(console, report: RunReport) -> None:
    counts = Counter(d.code for d in report.diagnostics)
    checked = len(report.results)
    # Files, not problems: a notebook with two broken cells is one file (its other cells
    # were analysed).
    problems = len({p.filename for p in report.all_problems})
    fixed = len(report.fixed)
    if fixed:
        console.print(f"Fixed {fixed} finding{'s' if fixed != 1 else ''}.")
    if not counts and not problems:
        console.print(f"All checks passed ({checked} file{'s' if checked != 1 else ''} checked).")
        return
    files = len({d.filename for d in report.diagnostics})
    total = sum(counts.values())
    if not total:
        console.print(f"No findings ({checked} checked); {problems} file{'s' if problems != 1 else ''} could not be analysed (in full).")
        return
    parts = ", ".join(f"{code} {_glyphs(console.file)['times']}{n}" for code, n in sorted(counts.items()))
    line = f"Found {total} finding{'s' if total != 1 else ''} in {files} file{'s' if files != 1 else ''} ({checked} checked)"
    if parts:
        line += f": {parts}"
    if problems:
        line += f"; {problems} file{'s' if problems != 1 else ''} could not be analysed (in full)"
    console.print(line + ".")
    _fixable(console, report)


def _fixable(console, report: RunReport) -> None:
    """ruff's hint: how many findings a flag would fix."""
    fixes = [d.fix for d in report.diagnostics if d.fix is not None]
    safe = sum(f.applicability == "safe" for f in fixes)
    unsafe = len(fixes) - safe
    if report.unsafe_fixes:
        safe, unsafe = safe + unsafe, 0
    parts = []
    if safe:
        parts.append(f"{safe} fixable with --fix" + (" --unsafe-fixes" if report.unsafe_fixes else ""))
    if unsafe:
        parts.append(f"{unsafe} more with --unsafe-fixes" if safe else f"{unsafe} fixable with --fix --unsafe-fixes")
    if parts:
        console.print("[*] " + ", ".join(parts) + ".")
