"""LibCST parse once per candidate file; a syntax error is a value, not an exception."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from zgcheck.diagnostics import FileProblem

if TYPE_CHECKING:  # LibCST is imported lazily: a run over files without loops never pays for it
    import libcst as cst
    from libcst.metadata import CodeRange


# Top-level statements whose text holds none of these words are unlikely to be asked for
# positions; they are resolved only if a position inside them is requested after all.
RELEVANT_WORDS = ("step", "grad", "backward")


@dataclass
class ParsedModule:
    """A parsed module with the one metadata a rule needs: source positions.

    LibCST's PositionProvider regenerates the whole module with position tracking, about
    8x the cost of plain code generation. Positions are therefore resolved lazily, one
    top-level statement at a time, shifted by that statement's first line (found by
    counting newlines in plain generated code)."""

    module: "cst.Module"
    positions: "dict[cst.CSTNode, CodeRange]" = field(default_factory=dict)
    _codes: "dict[cst.CSTNode, str]" = field(default_factory=dict, repr=False)
    _pending: "list[tuple[cst.CSTNode, int, str]] | None" = field(default=None, repr=False)

    def code(self, node: "cst.CSTNode") -> str:
        """Source text of ``node``; cached, as the analysis asks for the same nodes often."""
        text = self._codes.get(node)
        if text is None:
            text = self._codes[node] = self.module.code_for_node(node)
        return text

    def start(self, node: "cst.CSTNode") -> tuple[int, int]:
        pos = self._range(node).start
        return pos.line, pos.column

    def end(self, node: "cst.CSTNode") -> tuple[int, int]:
        pos = self._range(node).end
        return pos.line, pos.column

    def _range(self, node: "cst.CSTNode") -> "CodeRange":
        found = self.positions.get(node)
        if found is None:
            self._resolve(relevant_only=True)
            found = self.positions.get(node)
        if found is None:
            self._resolve(relevant_only=False)
            found = self.positions[node]
        return found

    def _resolve(self, relevant_only: bool) -> None:
        """Resolve positions of the pending top-level statements (relevant ones first)."""
        if self._pending is None:
            self._pending = self._statements()
        keep = []
        for stmt, offset, text in self._pending:
            if relevant_only and not any(word in text for word in RELEVANT_WORDS):
                keep.append((stmt, offset, text))
                continue
            self.positions.update(_statement_positions(self.module, stmt, offset))
        self._pending = keep

    def _statements(self) -> "list[tuple[cst.CSTNode, int, str]]":
        """Each top-level statement with the number of lines before its own text."""
        offset = sum(self.code(line).count("\n") for line in self.module.header)
        result = []
        for stmt in self.module.body:
            text = self.code(stmt)
            result.append((stmt, offset, text))
            offset += text.count("\n")
        return result


def _statement_positions(module: "cst.Module", stmt: "cst.CSTNode", offset: int) -> "dict":
    """Positions inside one top-level statement whose text starts after ``offset`` lines."""
    try:
        from zgcheck.positions import statement_positions
    except ImportError:  # LibCST moved its internals: the public, slower way
        return _provider_positions(module, stmt, offset)
    return statement_positions(module, stmt, offset + 1)


def _provider_positions(module: "cst.Module", stmt: "cst.CSTNode", offset: int) -> "dict":
    """The statement resolved as a module of its own by PositionProvider, shifted down."""
    from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider

    alone = module.with_changes(header=(), body=(stmt,), footer=())
    ranges = MetadataWrapper(alone, unsafe_skip_copy=True).resolve(PositionProvider)
    return {node: CodeRange((r.start.line + offset, r.start.column), (r.end.line + offset, r.end.column))
            for node, r in ranges.items()}


# Every finding needs a step (`O.step()`, `scaler.step(O)`, `xm.optimizer_step(O)`) or a
# manual update reading `p.grad`; all of them are attribute accesses with these names.
EVENT_ATTRIBUTES = frozenset({"step", "optimizer_step", "grad"})


def might_have_events(text: str) -> bool:
    """Second prefilter, exact where the byte one is not: CPython's C parser (about 5x
    faster than LibCST) says whether any `.step` / `.optimizer_step` / `.grad` attribute
    exists. Words in comments, strings and parameter names no longer cost a LibCST parse.
    Code CPython cannot parse goes on to LibCST, which reports the problem."""
    import ast
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes etc. are not ours to report
            tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return True
    return any(isinstance(node, ast.Attribute) and node.attr in EVENT_ATTRIBUTES for node in ast.walk(tree))


def parse(filename: str, text: str) -> ParsedModule | FileProblem:
    """Parse ``text`` with LibCST and resolve positions only."""
    import libcst as cst

    try:
        module = cst.parse_module(text)
    except cst.ParserSyntaxError as exc:
        return _syntax_problem(filename, text, exc)
    except RecursionError:
        return FileProblem(filename, "syntax", "code is nested too deeply to parse")
    return ParsedModule(module)


def _syntax_problem(filename: str, text: str, exc: Exception) -> FileProblem:
    """CPython's own message and position are clearer than LibCST's; use them when it agrees."""
    import ast

    try:
        ast.parse(text, filename)
    except SyntaxError as err:
        line, col = err.lineno or 1, err.offset or 1
        return FileProblem(filename, "syntax", f"syntax error: {err.msg}", line, col)
    except (ValueError, RecursionError, MemoryError) as err:
        return FileProblem(filename, "syntax", f"cannot parse: {err}")
    message = str(getattr(exc, "message", exc)).strip().splitlines()
    line, col = getattr(exc, "raw_line", 1), getattr(exc, "raw_column", 0) + 1
    return FileProblem(filename, "syntax", f"syntax not supported by the parser: {message[0] if message else exc}", line, col)
