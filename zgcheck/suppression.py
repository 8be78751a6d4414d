"""``# noqa`` handling: line directives, the file-level ``# zgcheck: noqa``, and ZG100.

A directive applies to the line a diagnostic is reported on. ``# noqa`` alone silences
every rule there; ``# noqa: ZG002, ZG004`` only those codes. A ``ZG`` code in a directive
that silences nothing (or names no rule) is reported as ZG100 with a safe fix that
removes it; codes of other linters (``E501``, ``BLE001``) are theirs and left alone.
"""
from __future__ import annotations

import io
import re
import tokenize
from bisect import bisect_right
from dataclasses import dataclass

from zgcheck.diagnostics import Diagnostic, Edit, Fix, Location
from zgcheck.sources import line_starts, source_lines

NOQA = re.compile(r"#\s*noqa(?![\w-])(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[\s,]+[A-Z]+[0-9]+)*))?", re.I)
FILE_NOQA = re.compile(r"^\s*#\s*zgcheck:\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[\s,]+[A-Z]+[0-9]+)*))?\s*$", re.I | re.M)
CODE = "ZG100"


@dataclass(frozen=True)
class Directive:
    """One ``# noqa`` comment: its line, 0-based column span and codes (empty = bare)."""

    row: int
    start: int
    end: int
    codes: tuple[str, ...]


def _codes(text: str | None) -> tuple[str, ...]:
    return tuple(c.upper() for c in re.split(r"[\s,]+", text or "") if c)


def file_exemption(text: str) -> frozenset[str] | None:
    """Codes a file-level ``# zgcheck: noqa`` silences (``{"ALL"}`` when it names none)."""
    codes: set[str] = set()
    found = False
    for match in FILE_NOQA.finditer(text):
        found = True
        codes |= set(_codes(match.group("codes"))) or {"ALL"}
    return frozenset(codes) if found else None


def directives(text: str, rows: "set[int] | frozenset[int] | None" = None) -> dict[int, Directive]:
    """``# noqa`` directives by line, read from real comments (never from strings).

    With ``rows``, only those lines are wanted: the tokenizer (the slow part, about 1 s for
    a 1 MB module) runs only if one of them may hold a directive, and stops after the last."""
    if rows is not None:
        rows = set(rows) & set(candidate_rows(text))
        if not rows:
            return {}
    last = max(rows) if rows else None
    found: dict[int, Directive] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(text, newline=None).readline):
            if last is not None and token.start[0] > last:
                break
            if token.type != tokenize.COMMENT:
                continue
            match = NOQA.search(token.string)
            if match and (rows is None or token.start[0] in rows):
                row, col = token.start
                found[row] = Directive(row, col + match.start(), col + match.end(), _codes(match.group("codes")))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        pass  # the parser already accepted the file; a tokenizer quirk only loses noqa
    return found


def candidate_rows(text: str) -> dict[int, tuple[str, ...]]:
    """Lines whose text holds something shaped like a directive (in a comment or not),
    with the codes named there; found by one regular expression, without tokenizing."""
    found: dict[int, tuple[str, ...]] = {}
    starts: list[int] | None = None
    row, counted = 1, 0
    for match in NOQA.finditer(text):
        if "\r" in text:  # old Mac line ends: count as the tokenizer does
            if starts is None:
                starts = line_starts(text)
            row = bisect_right(starts, match.start())
        else:
            row += text.count("\n", counted, match.start())
            counted = match.start()
        found[row] = found.get(row, ()) + _codes(match.group("codes"))
    return found


def suppress(diagnostics: list[Diagnostic], text: str, filename: str, enabled: frozenset[str], known: frozenset[str]) -> list[Diagnostic]:
    """Drop silenced diagnostics and add ZG100 for directives that silence nothing."""
    exempt = file_exemption(text) if "zgcheck" in text else None
    if exempt is not None and "ALL" in exempt:
        return []
    if exempt:
        diagnostics = [d for d in diagnostics if d.code not in exempt]
    if "noqa" not in text.lower():
        return diagnostics
    # Only lines that hold a finding, or a directive naming a ZG code (ZG100), can matter.
    shaped = candidate_rows(text)
    wanted = {d.location.row for d in diagnostics if d.location.row in shaped}
    if CODE in enabled:
        wanted |= {row for row, codes in shaped.items() if any(c.startswith("ZG") for c in codes)}
    by_row = directives(text, wanted)
    used: dict[int, set[str]] = {}
    kept = []
    for diag in diagnostics:
        directive = by_row.get(diag.location.row)
        if directive and (not directive.codes or diag.code in directive.codes):
            used.setdefault(directive.row, set()).add(diag.code)
        else:
            kept.append(diag)
    if CODE in enabled and not (exempt and CODE in exempt) and by_row:
        lines = source_lines(text)
        for directive in by_row.values():
            extra = _unused(directive, used.get(directive.row, set()), enabled, known, lines, filename)
            if extra is not None:
                kept.append(extra)
    return sorted(kept, key=Diagnostic.sort_key)


def _unused(directive: Directive, used: set[str], enabled: frozenset[str], known: frozenset[str],
            lines: list[str], filename: str) -> Diagnostic | None:
    if CODE in directive.codes:
        return None  # `# noqa: ZG100` asks us to keep the directive, whatever it holds
    unknown = [c for c in directive.codes if c.startswith("ZG") and c not in known]
    unused = [c for c in directive.codes if c in known and c in enabled and c not in used]
    if not unknown and not unused:
        return None
    parts = [f"unused: {', '.join(unused)}"] if unused else []
    parts += [f"unknown: {', '.join(unknown)}"] if unknown else []
    keep = [c for c in directive.codes if c not in unknown and c not in unused]
    edit = _edit(directive, lines[directive.row - 1], keep)
    start, end = Location(directive.row, directive.start + 1), Location(directive.row, directive.end + 1)
    fix = Fix("safe", "Remove unused `noqa` directive" if not keep else "Remove unused codes", (edit,))
    return Diagnostic(CODE, f"unused `noqa` directive ({'; '.join(parts)})", filename, start, end, fix=fix)


def _edit(directive: Directive, line: str, keep: list[str]) -> Edit:
    """Rewrite the directive keeping ``keep``, or delete it with the space before it."""
    row, start, end = directive.row, directive.start, directive.end
    if keep:
        return Edit(f"# noqa: {', '.join(keep)}", Location(row, start + 1), Location(row, end + 1))
    before, after = line[:start], line[end:]
    if after.strip():
        if "#" not in before:
            # `x  # noqa: ZG002 reason` keeps the reason as a comment: `x  # reason`.
            return Edit("#", Location(row, start + 1), Location(row, end + 1))
        return Edit("", Location(row, len(before.rstrip()) + 1), Location(row, end + 1))
    if not before.strip():
        return Edit("", Location(row, 1), Location(row + 1, 1))  # the line held only the directive
    return Edit("", Location(row, len(before.rstrip()) + 1), Location(row, len(line) + 1))
