"""Findings as text (a code frame of the step with the backward and zero lines) or as JSON
shaped like `zgcheck check -o json` (plus `kind`, `related` and `count`)."""
from __future__ import annotations

import json
import linecache
import os
from collections import Counter
from typing import TextIO

from zgcheck.runtime.findings import Finding

# The static rules' documentation (zgcheck.rules.base.DOCS_URL), without importing LibCST.
DOCS_URL = "https://github.com/zgcheck/zgcheck/blob/main/docs/rules.md#{code}"


def _relative(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def _glyphs(stream: TextIO) -> tuple[str, str, str]:
    try:
        "│┆←".encode(getattr(stream, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return "|", ":", "<-"
    return "│", "┆", "←"


def _frame(finding: Finding) -> list[tuple[str, int, str, str]]:
    """(file, line, source, label) rows: the step and its related events, in file order."""
    marks: dict[tuple[str, int], str] = {}
    for event in finding.related:
        marks.setdefault((event.site.filename, event.site.line), event.label)
    marks[(finding.site.filename, finding.site.line)] = "step" if finding.code != "ZG006" else "backward"
    rows = []
    for (filename, line), label in sorted(marks.items(), key=lambda kv: (kv[0][0] != finding.filename, kv[0])):
        text = linecache.getline(filename, line).rstrip()
        if text:
            rows.append((filename, line, text, label))
    return rows


def write_full(findings: list[Finding], stream: TextIO, stats: dict[str, int]) -> None:
    """One header line per finding, its code frame, and a summary."""
    bar, gap, arrow = _glyphs(stream)
    for finding in findings:
        times = f" (x{finding.count})" if finding.count > 1 else ""
        stream.write(f"{_relative(finding.filename)}:{finding.row}:{finding.site.column}: {finding.code} "
                     f"[{finding.kind}] {finding.message}{times}\n")
        rows = _frame(finding)
        width = max((len(str(line)) for _, line, _, _ in rows), default=1)
        previous = None
        for filename, line, text, label in rows:
            if previous is not None and (filename != previous[0] or line > previous[1] + 1):
                stream.write(" " * width + f" {gap}\n")
            where = "" if filename == finding.filename else f"  ({_relative(filename)})"
            stream.write(f"{line:>{width}} {bar} {text}  {arrow} {label}{where}\n")
            previous = (filename, line)
        stream.write("\n")
    checked = (f"{stats['steps']} step{'s' if stats['steps'] != 1 else ''} of {stats['optimizers']} "
               f"optimizer{'s' if stats['optimizers'] != 1 else ''}, {stats['backwards']} backward "
               f"pass{'es' if stats['backwards'] != 1 else ''} checked")
    if not findings:
        stream.write(f"zgcheck.runtime: no gradient problems ({checked}).\n")
        return
    kinds = Counter(f.kind for f in findings)
    parts = ", ".join(f"{kind} x{n}" for kind, n in sorted(kinds.items()))
    stream.write(f"zgcheck.runtime: {len(findings)} gradient problem{'s' if len(findings) != 1 else ''} "
                 f"({parts}); {checked}.\n")


def _location(site) -> dict:
    return {"column": site.column, "row": site.line}


def as_dict(finding: Finding) -> dict:
    """A finding with the CLI's JSON fields (ruff's names) and the runtime's own."""
    return {
        "cell": None,
        "code": finding.code,
        "count": finding.count,
        "end_location": _location(finding.site),
        "filename": os.path.abspath(finding.filename),
        "fix": None,
        "kind": finding.kind,
        "location": _location(finding.site),
        "message": finding.message,
        "noqa_row": finding.row,
        "related": [
            {"filename": os.path.abspath(r.site.filename), "label": r.label, "location": _location(r.site),
             "message": r.site.text}
            for r in finding.related
        ],
        "share": finding.share,
        "url": DOCS_URL.format(code=finding.code.lower()),
    }


def write_json(findings: list[Finding], stream: TextIO) -> None:
    json.dump([as_dict(f) for f in findings], stream, indent=2)
    stream.write("\n")
