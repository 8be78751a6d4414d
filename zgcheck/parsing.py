"""LibCST parse once per candidate file; a syntax error is a value, not an exception."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from zgcheck.diagnostics import FileProblem

if TYPE_CHECKING:  # LibCST is imported lazily: a run over files without loops never pays for it
    import ast

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

    @property
    def text(self) -> str:
        """The whole module's source (LibCST's `Module.code` regenerates it on every call)."""
        return self.code(self.module)

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
        offset = sum(_newlines(self.code(line)) for line in self.module.header)
        result = []
        for stmt in self.module.body:
            text = self.code(stmt)
            result.append((stmt, offset, text))
            offset += _newlines(text)
        return result


def _newlines(text: str) -> int:
    """Line breaks as LibCST counts them: \\n, \\r\\n and a lone \\r (old Mac files)."""
    if "\r" not in text:
        return text.count("\n")
    return text.count("\n") + text.count("\r") - text.count("\r\n")


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
# `.zero_grad` too: with a reset in the file, a rule can fire through a helper of another
# module that runs the backward and the step (a loss scaler's __call__).
EVENT_ATTRIBUTES = frozenset({"step", "optimizer_step", "grad", "zero_grad"})

# LibCST's parser slows down quadratically on long operator chains (4,000 `a + a + ...`
# take 6 s) and its native code overflows the C stack near 8,000; real code stays far
# below 1,000 levels. It analyses about 10,000 nodes a second: 150,000 is ~15 s.
MAX_DEPTH = 1000
MAX_NODES = 150_000


@dataclass(frozen=True)
class Precheck:
    """What CPython's parser says before LibCST is asked: can a rule fire at all, and is
    the tree within the limits LibCST handles?"""

    has_events: bool
    problem: FileProblem | None = None


def precheck(filename: str, text: str) -> Precheck:
    """One CPython parse (about 5x faster than LibCST) and one walk: whether any `.step` /
    `.optimizer_step` / `.grad` attribute exists (words in comments, strings and parameter
    names no longer cost a LibCST parse), and the tree's size and depth. Code CPython cannot
    parse goes on to LibCST, which decides and reports the problem."""
    import ast
    import warnings

    try:
        with warnings.catch_warnings():  # "invalid escape sequence" and the like are not ours to print
            warnings.simplefilter("ignore")
            tree = ast.parse(text, filename)
    except SyntaxError:
        return Precheck(True)  # maybe syntax newer than this interpreter
    except (RecursionError, MemoryError):
        return Precheck(True, _too_deep(filename))
    except ValueError as err:
        return Precheck(True, FileProblem(filename, "syntax", f"cannot parse: {err}"))
    nodes, depth, events = _shape(tree)
    if not events:
        return Precheck(False)
    if depth > MAX_DEPTH:
        return Precheck(True, _too_deep(filename, f" (more than {MAX_DEPTH:,} levels)"))
    if nodes > MAX_NODES:
        problem = FileProblem(filename, "limit", f"file is too large to analyse (more than {MAX_NODES:,} syntax nodes); skipped")
        return Precheck(True, problem)
    return Precheck(True)


def parse(filename: str, text: str) -> ParsedModule | FileProblem:
    """Parse ``text`` with LibCST (call :func:`precheck` first: it guards the limits)."""
    import libcst as cst

    try:
        module = cst.parse_module(text)
    except cst.ParserSyntaxError as exc:
        return _syntax_problem(filename, text, exc)
    except RecursionError:
        return _too_deep(filename)
    return ParsedModule(module)


def _shape(tree: "ast.AST") -> tuple[int, int, bool]:
    """Node count, depth and whether an event attribute occurs, without recursion (the
    tree may be very deep)."""
    import ast

    nodes, deepest, events, stack = 0, 0, False, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        nodes += 1
        deepest = max(deepest, depth)
        events = events or (isinstance(node, ast.Attribute) and node.attr in EVENT_ATTRIBUTES)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return nodes, deepest, events


def _too_deep(filename: str, detail: str = "") -> FileProblem:
    return FileProblem(filename, "limit", f"code is nested too deeply to analyse{detail}; skipped")


def _syntax_problem(filename: str, text: str, exc: Exception) -> FileProblem:
    """CPython's own message and position are clearer than LibCST's; use them when it agrees."""
    import ast

    try:
        ast.parse(text, filename)
    except SyntaxError as err:
        line, col = err.lineno or 1, err.offset or 1
        return FileProblem(filename, "syntax", f"syntax error: {err.msg}{_python2_hint(err.msg)}", line, col)
    except (RecursionError, MemoryError):
        return _too_deep(filename)
    except ValueError as err:
        return FileProblem(filename, "syntax", f"cannot parse: {err}")
    message = str(getattr(exc, "message", exc)).strip().splitlines()
    line, col = getattr(exc, "raw_line", 1), getattr(exc, "raw_column", 0) + 1
    return FileProblem(filename, "syntax", f"syntax not supported by the parser: {message[0] if message else exc}", line, col)


def _python2_hint(message: str) -> str:
    """CPython names the Python 2 print/exec statements; say what that means for us."""
    if "Missing parentheses in call to" in message:
        return " (Python 2 code is not supported)"
    return ""
