"""Values that cross pipeline stages: diagnostics and per-file results.

They are frozen dataclasses so that a result computed in a worker process can be
pickled, cached and compared without surprises.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Location:
    """A 1-based line and column, as editors and ruff's JSON count them."""

    row: int
    column: int


@dataclass(frozen=True)
class RelatedEvent:
    """An event a diagnostic talks about (the zero, backward or step it names)."""

    label: str
    line: int


@dataclass(frozen=True)
class Edit:
    """Replace the text from ``location`` to ``end_location`` (exclusive) by ``content``.

    Same shape as ruff's JSON edits; an insertion has equal locations."""

    content: str
    location: Location
    end_location: Location


@dataclass(frozen=True)
class Fix:
    """A proposed rewrite: ``applicability`` is "safe" (applied by --fix) or "unsafe"
    (applied only with --unsafe-fixes)."""

    applicability: str
    message: str
    edits: tuple[Edit, ...]


@dataclass(frozen=True)
class Diagnostic:
    """One finding of one rule at one place in one file."""

    code: str
    message: str
    filename: str
    location: Location
    end_location: Location
    optimizer: str = ""
    related: tuple[RelatedEvent, ...] = ()
    fix: Fix | None = None
    cell: int | None = None  # notebook cell number (1-based), None for .py files

    @property
    def line(self) -> int:
        return self.location.row

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.filename, self.location.row, self.location.column, self.code)


@dataclass(frozen=True)
class FileProblem:
    """A file that could not be analysed: unreadable, undecodable, a syntax error, a crash."""

    filename: str
    kind: str  # "io", "decode", "syntax", "limit" (too large or too deep), "internal"
    message: str
    row: int = 0
    column: int = 0
    cell: int | None = None  # a notebook's cell (1-based) that ``row`` counts in


@dataclass(frozen=True)
class FileResult:
    """Everything one file produced; problems are values, never raised exceptions."""

    filename: str
    diagnostics: tuple[Diagnostic, ...] = ()
    problems: tuple[FileProblem, ...] = ()
    parsed: bool = False
    source_lines: tuple[str, ...] = field(default=(), compare=False)
    fixed: tuple[Diagnostic, ...] = ()  # what --fix applied (or would apply, with --diff)
    fix_note: str = ""  # why fixes were not written, when they were not
    diff: str = ""  # unified diff of the fixes
    cell_lines: tuple[tuple[str, ...], ...] = field(default=(), compare=False)  # notebooks: lines per cell
    # Other files of the project whose helpers the analysis read: (path, content hash).
    dependencies: tuple[tuple[str, str], ...] = field(default=(), compare=False)
