"""LibCST parse once per candidate file; a syntax error is a value, not an exception."""
from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from zgcheck.diagnostics import FileProblem

if TYPE_CHECKING:  # LibCST is imported lazily: a run over files without loops never pays for it
    import ast
    from typing import Mapping

    from zgcheck.layout import Block, Layout
    from zgcheck.prefilter import EventScan

    import libcst as cst
    from libcst.metadata import CodeRange


# A class longer than this is not resolved at once: its statements become units of their
# own (a test module of one 10,000-line class, with one training loop in one method).
SPLIT_LINES = 60
# With the layout, splitting costs no code generation: any statement with one body that
# is longer than this is resolved as its head and its statements.
SPLIT_BY_LAYOUT = 12


@dataclass
class _Unit:
    """A statement whose positions are resolved together: its text starts after ``offset``
    lines, inside blocks indented by ``indents``."""

    node: "cst.CSTNode"
    offset: int
    indents: tuple[str, ...]
    # Its generated code (counted lines), or None when the offset came from the layout.
    text: str | None
    # From the layout: the line its range must start on (checked), 0 if unknown; and
    # whether it is a class resolved whole (the head of a split class).
    start: int = 0
    whole: bool = False
    done: bool = False  # resolved, or split into units of its own


@dataclass
class ParsedModule:
    """A parsed module with the one metadata a rule needs: source positions.

    LibCST's PositionProvider regenerates the whole module with position tracking, about
    8x the cost of plain code generation. Positions are therefore resolved lazily, one
    statement at a time, starting at that statement's first line (found by counting
    newlines in plain generated code): only statements whose text holds the first line
    of the node asked for are resolved, and a long class is split into its statements."""

    module: "cst.Module"
    # The real text when LibCST parsed a sliced copy (some functions blanked out).
    source: str | None = None
    positions: "dict[cst.CSTNode, CodeRange]" = field(default_factory=dict)
    # Where statements start, from the prefilter's `ast` (zgcheck.layout), and the text
    # LibCST parsed (the sliced copy, or the source): nodes are then found by searching
    # that text, and no statement's code is generated just to count its lines.
    layout: "Layout | None" = None
    parsed_text: str | None = None
    _codes: "dict[cst.CSTNode, str]" = field(default_factory=dict, repr=False)
    _pending: "list[_Unit] | None" = field(default=None, repr=False)
    _order: "list[_Unit]" = field(default_factory=list, repr=False)  # every unit, in text order
    _offsets: "list[int]" = field(default_factory=list, repr=False)
    _line_starts: "list[int] | None" = field(default=None, repr=False)

    def code(self, node: "cst.CSTNode") -> str:
        """Source text of ``node``; cached, as the analysis asks for the same nodes often."""
        text = self._codes.get(node)
        if text is None:
            from zgcheck.cstwalk import plain_code

            text = plain_code(node)
            if text is None:
                text = self.module.code_for_node(node)
            self._codes[node] = text
        return text

    def body_text(self, node: "cst.CSTNode") -> str:
        """The text of a compound statement's body (a function's, a loop's) as parsed:
        sliced from the parsed text by the layout's lines, without generating its code
        (for word searches: the lines from its body's first statement to its last); the
        generated code of the body where the layout does not place it."""
        if self.layout is not None and self.parsed_text is not None:
            start = self.start(node)[0]
            found = self.layout.bodies.get(start) if self.layout is not None else None
            if found is not None and found[1].firsts:
                starts = self._starts_of_lines()
                first, last = found[1].firsts[0], found[0]
                if 0 < first <= last <= len(starts):
                    end = starts[last] if last < len(starts) else len(self.parsed_text)
                    return self.parsed_text[starts[first - 1] : end]
        return self.code(node.body)

    @property
    def text(self) -> str:
        """The whole module's source (LibCST's `Module.code` regenerates it on every call)."""
        return self.source if self.source is not None else self.code(self.module)

    def start(self, node: "cst.CSTNode") -> tuple[int, int]:
        if self.layout is not None and node not in self.positions:
            # A loop's or a function's start is where the layout placed it: no need to
            # record the positions of everything inside it.
            if self._pending is None:
                self._pending = self._statements()
            found = self._range_by_rows(node, self._key(node), start_only=True)
            if isinstance(found, tuple):
                return found
        pos = self._range(node).start
        return pos.line, pos.column

    def end(self, node: "cst.CSTNode") -> tuple[int, int]:
        pos = self._range(node).end
        return pos.line, pos.column

    def _range(self, node: "cst.CSTNode") -> "CodeRange":
        found = self.positions.get(node)
        if found is not None:
            return found
        if self._pending is None:
            self._pending = self._statements()
        key = self._key(node)
        if self.layout is not None:
            found = self._range_by_rows(node, key)
            if found is not None:
                return found
            if self.layout is None:  # the layout disagreed: start again by counting
                return self._range(node)
        while True:  # the units whose text holds the node's first line, one at a time
            unit = next((u for u in self._pending if u.text is not None and key in u.text), None)
            if unit is None:
                break
            self._resolve_unit(unit)
            found = self.positions.get(node)
            if found is not None:
                return found
        while self._pending:  # not found by its text (never expected): everything
            self._resolve_unit(self._pending[0])
        return self.positions[node]

    def _key(self, node: "cst.CSTNode") -> str:
        """The search key of ``node``; for a compound statement, from its head alone (a
        long loop's code need not be generated to find its first line)."""
        import libcst as cst

        body = getattr(node, "body", None)
        if isinstance(body, cst.IndentedBlock) and type(node) in _first_words():
            changes = {"body": body.with_changes(body=(cst.SimpleStatementLine((cst.Pass(),)),), footer=())}
            if getattr(node, "orelse", None) is not None:
                changes["orelse"] = None
            return _search_key(self.module.code_for_node(node.with_changes(**changes)))
        return _search_key(self.code(node))

    def _range_by_rows(self, node: "cst.CSTNode", key: str, start_only: bool = False) -> "CodeRange | tuple[int, int] | None":
        """Resolve the units whose lines hold ``key`` (found in the parsed text), until
        ``node`` has a position; None if none does (or the layout was dropped). With
        ``start_only``, a statement the layout placed gives its start unresolved."""
        text = self.parsed_text or ""
        at = text.find(key) if key else -1
        while at != -1:
            row = bisect_right(self._starts_of_lines(), at)  # 1-based: lines starting at or before
            while True:
                index = bisect_left(self._offsets, row) - 1
                unit = self._order[index] if index >= 0 else None
                if start_only and unit is not None and unit.node is node:
                    return self._placed_start(unit)
                if unit is None or unit.done:
                    break
                split = self._resolve_unit(unit)
                if self.layout is None:
                    return None
                found = self.positions.get(node)
                if found is not None:
                    return found
                if not split:
                    break
            at = text.find(key, at + 1)
        return None

    def _resolve_unit(self, unit: _Unit) -> bool:
        """Resolve ``unit``'s positions, or split it into its statements (True)."""
        self._pending = [u for u in self._pending if u is not unit]
        unit.done = True
        parts = self._split(unit)
        if parts:
            self._pending[:0] = parts
            if self.layout is not None:
                at = next(i for i, u in enumerate(self._order) if u is unit)
                self._order[at : at + 1] = parts
                self._offsets = [u.offset for u in self._order]
            return True
        code: list[str] | None = [] if unit.text is None else None
        found = _statement_positions(self.module, unit.node, unit.offset, unit.indents, code)
        if code is not None and not self._placed_right(unit, code[0]):
            self._drop_layout()  # never expected: count generated code instead
            return False
        self.positions.update(found)
        return False

    def _placed_start(self, unit: _Unit) -> "tuple[int, int] | None":
        """Where the layout placed a compound statement: its line, after its indentation,
        if the parsed text agrees (the line holds the statement's first word there)."""
        words = _first_words().get(type(unit.node))
        starts = self._starts_of_lines()
        if not unit.start or words is None or unit.start > len(starts):
            return None
        text = self.parsed_text or ""
        indent = "".join(unit.indents)
        if not text.startswith(indent, starts[unit.start - 1]):
            return None
        word = _WORD.match(text, starts[unit.start - 1] + len(indent))
        if word is None or word.group() not in words:
            return None
        return unit.start, len(indent)

    def _starts_of_lines(self) -> list[int]:
        if self._line_starts is None:
            from zgcheck.sources import line_starts

            self._line_starts = line_starts(self.parsed_text or "")
        return self._line_starts

    def _placed_right(self, unit: _Unit, code: str) -> bool:
        """Does the parsed text hold the unit's code where the layout placed it?"""
        starts = self._starts_of_lines()
        if unit.offset >= len(starts):
            return False
        return (self.parsed_text or "").startswith(code, starts[unit.offset])

    def _drop_layout(self) -> None:
        self.layout = None
        self.positions.clear()
        self._order, self._offsets = [], []
        self._pending = self._statements()

    def _from_layout(self, statements, block: "Block", indents: tuple[str, ...]) -> "list[_Unit] | None":
        """Units for ``statements`` placed by the layout's ``block`` (None: they differ)."""
        import libcst as cst

        if len(statements) != len(block.firsts):
            return None
        units = []
        for stmt, first, start in zip(statements, block.firsts, block.starts):
            leading = len(stmt.leading_lines)
            decorators = getattr(stmt, "decorators", ())
            if decorators:
                leading += len(decorators[0].leading_lines)
            # A function blanked by the prefilter is a `pass` on its first line.
            expected = first if isinstance(stmt, cst.SimpleStatementLine) else start
            units.append(_Unit(stmt, first - 1 - leading, indents, None, expected))
        return units

    def _split(self, unit: _Unit) -> "list[_Unit]":
        """The statements of a long class, each with its first line and indentation; the
        class itself (its name, bases, decorators) stays a unit, resolved as a whole if
        a position of its own is asked for."""
        import libcst as cst

        node = unit.node
        if unit.whole or not isinstance(getattr(node, "body", None), cst.IndentedBlock):
            return []
        if unit.text is None:
            return self._split_by_layout(unit)
        if not isinstance(node, cst.ClassDef):
            return []
        total = _newlines(unit.text)
        if total < SPLIT_LINES or not _can_seed_indentation():
            return []
        body = node.body
        texts = [self.code(stmt) for stmt in body.body]
        offset = unit.offset + total - sum(map(_newlines, texts)) - sum(_newlines(self.code(line)) for line in body.footer)
        indents = unit.indents + (self.module.default_indent if body.indent is None else body.indent,)
        parts = []
        for stmt, text in zip(body.body, texts):
            parts.append(_Unit(stmt, offset, indents, text))
            offset += _newlines(text)
        # The class itself (its name, bases, decorators): resolved whole, and first, if a
        # position of its own is asked for ("" is found by no search key).
        return [_Unit(node, unit.offset, unit.indents, "")] + parts

    def _split_by_layout(self, unit: _Unit) -> "list[_Unit]":
        """A long class, function, loop, `with` or `if` (no `else`): its head (resolved
        whole if a position of its own is asked for) and its body's statements, placed by
        the layout."""
        found = self.layout.bodies.get(unit.start) if self.layout is not None else None
        if found is None or found[0] - unit.offset < SPLIT_BY_LAYOUT or getattr(unit.node, "orelse", None) is not None:
            return []
        if not _can_seed_indentation():
            return []
        body = unit.node.body
        indents = unit.indents + (self.module.default_indent if body.indent is None else body.indent,)
        parts = self._from_layout(body.body, found[1], indents)
        if not parts:
            return []
        return [_Unit(unit.node, unit.offset, unit.indents, None, unit.start, whole=True)] + parts

    def _statements(self) -> "list[_Unit]":
        """Each top-level statement with the number of lines before its own text."""
        if self.layout is not None and self.parsed_text is not None:
            units = self._from_layout(self.module.body, self.layout.top, ())
            if units is not None:
                self._order, self._offsets = list(units), [u.offset for u in units]
                return units
            self.layout = None
        offset = sum(_newlines(self.code(line)) for line in self.module.header)
        result = []
        for stmt in self.module.body:
            text = self.code(stmt)
            result.append(_Unit(stmt, offset, (), text))
            offset += _newlines(text)
        return result


def _search_key(code: str) -> str:
    """The first line of a node's code that holds more than punctuation, stripped (a
    comment line above a statement belongs to it: it is searched for too)."""
    for line in code.splitlines():
        line = line.strip()
        if len(line) > 3:
            return line
    return ""


def _can_seed_indentation() -> bool:
    try:
        import zgcheck.positions  # noqa: F401
    except ImportError:  # the slower fallback resolves whole top-level statements only
        return False
    return True


_WORDS: "dict[type, tuple[str, ...]] | None" = None
_WORD = re.compile(r"[A-Za-z_]\w*")


def _first_words() -> "dict[type, tuple[str, ...]]":
    """The compound statements whose start the layout gives without resolving them, with
    the words their first line starts with."""
    global _WORDS
    if _WORDS is None:
        import libcst as cst

        _WORDS = {cst.For: ("for", "async"), cst.While: ("while",), cst.If: ("if",), cst.With: ("with", "async"),
                  cst.FunctionDef: ("def", "async"), cst.ClassDef: ("class",)}
    return _WORDS


def _newlines(text: str) -> int:
    """Line breaks as LibCST counts them: \\n, \\r\\n and a lone \\r (old Mac files)."""
    if "\r" not in text:
        return text.count("\n")
    return text.count("\n") + text.count("\r") - text.count("\r\n")


def _statement_positions(module: "cst.Module", stmt: "cst.CSTNode", offset: int, indents: tuple[str, ...] = (),
                         code: "list[str] | None" = None) -> "dict":
    """Positions inside one statement whose text starts after ``offset`` lines, inside
    blocks indented by ``indents`` (none for a top-level statement); ``code`` receives
    the statement's generated text."""
    try:
        from zgcheck.positions import statement_positions
    except ImportError:  # LibCST moved its internals: the public, slower way
        if code is not None:
            code.append(module.code_for_node(stmt))
        return _provider_positions(module, stmt, offset)
    return statement_positions(module, stmt, offset + 1, indents, code)


def _provider_positions(module: "cst.Module", stmt: "cst.CSTNode", offset: int) -> "dict":
    """The statement resolved as a module of its own by PositionProvider, shifted down."""
    from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider

    alone = module.with_changes(header=(), body=(stmt,), footer=())
    ranges = MetadataWrapper(alone, unsafe_skip_copy=True).resolve(PositionProvider)
    return {node: CodeRange((r.start.line + offset, r.start.column), (r.end.line + offset, r.end.column))
            for node, r in ranges.items()}


# LibCST's parser slows down quadratically on long operator chains (4,000 `a + a + ...`
# take 6 s) and its native code overflows the C stack near 8,000; real code stays far
# below 1,000 levels. It analyses about 10,000 nodes a second: 150,000 is ~15 s.
MAX_DEPTH = 1000
MAX_NODES = 150_000


@dataclass(frozen=True)
class Precheck:
    """What CPython's parser says before LibCST is asked: can a rule fire at all, is the
    tree within the limits LibCST handles, and which text LibCST needs to see (``sliced``:
    the source with the functions no analysis can need blanked out, same line and column
    numbers; None for the whole text)."""

    has_events: bool
    problem: FileProblem | None = None
    sliced: str | None = None
    # Other files of the project the decision read (path, content hash): a cached result
    # holds only while they keep these bytes.
    consulted: tuple[tuple[str, str], ...] = ()
    # Where the statements of the text start (zgcheck.layout), for ParsedModule.
    layout: "Layout | None" = None


def precheck(filename: str, text: str, helpers: "Mapping[str, frozenset[str]] | None" = None,
             factories: frozenset[str] = frozenset()) -> Precheck:
    """One CPython parse (about 5x faster than LibCST), a walk of its statements and of
    the expressions on lines with event words: does some function (or the top level), with
    the module's functions it names, hold a backward call and a step or a manual update
    (:mod:`zgcheck.prefilter`)? Words in comments and strings, `scheduler.step()` in a file
    without backward, `.grad` reads in autograd code cost no LibCST parse. ``helpers`` names
    callables defined elsewhere with the event kinds their calls hold; ``factories`` the
    configured optimizer factories (they decide which functions slicing keeps). Code CPython cannot
    parse goes on to LibCST, which decides and reports the problem."""
    import ast
    import warnings

    from zgcheck.prefilter import EventScan
    from zgcheck.sources import code_might_hold_training_code

    if not code_might_hold_training_code(text):
        return Precheck(False)  # the words the byte prefilter saw are in strings or comments
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
    consulted: dict[str, str] = {}
    try:
        scan = EventScan(text, tree, helpers, factories)
        if not scan.can_fire() and not _fires_with_project(scan, filename, consulted):
            return Precheck(False, consulted=tuple(sorted(consulted.items())))
        sliced, removed = scan.sliced() if "\r" not in text else (None, set())
    except RecursionError:
        return Precheck(True, _too_deep(filename))
    problem = _over_limits(filename, tree, removed)
    if problem:
        return Precheck(True, problem, None, tuple(sorted(consulted.items())))
    from zgcheck.layout import layout

    return Precheck(True, None, sliced, tuple(sorted(consulted.items())), layout(tree))


def limits(filename: str, text: str) -> FileProblem | None:
    """Why LibCST must not be given ``text`` (too deep, too large, unparsable), or None;
    for a module parsed whatever its events (a helper of another module)."""
    import ast
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(text, filename)
    except SyntaxError:
        return None  # LibCST decides
    except (RecursionError, MemoryError):
        return _too_deep(filename)
    except ValueError as err:
        return FileProblem(filename, "syntax", f"cannot parse: {err}")
    return _over_limits(filename, tree, set())


def _over_limits(filename: str, tree: "ast.AST", removed: "set[int]") -> FileProblem | None:
    nodes, depth = _shape(tree, removed)
    if depth > MAX_DEPTH:
        return _too_deep(filename, f" (more than {MAX_DEPTH:,} levels)")
    if nodes > MAX_NODES:
        return FileProblem(filename, "limit", f"file is too large to analyse (more than {MAX_NODES:,} syntax nodes); skipped")
    return None


def _fires_with_project(scan: "EventScan", filename: str, consulted: dict[str, str]) -> bool:
    """Can a function fire with the helpers it names from other modules of the project (a
    loss scaler whose `__call__` runs backward and step, a `backward_and_step(loss, opt)`
    holding both)? Only
    for a file on disk, as the analysis resolves such calls only there. ``consulted``
    receives the files read for the answer (path -> content hash)."""
    import os

    if not os.path.isfile(filename):
        return False
    from zgcheck.prefilter import module_digest, module_index
    from zgcheck.project import project

    found = project()

    def index(path: str, need: frozenset[str]) -> dict[str, set[str]]:
        offered = module_index(path, need)
        consulted[path] = module_digest(path)
        return offered

    helpers = scan.external_helpers(lambda module, level: found.find(filename, module, level), index)
    if not helpers:
        return False
    scan.with_helpers(helpers)
    return scan.can_fire()


def parse(filename: str, text: str, sliced: str | None = None, layout: "Layout | None" = None) -> ParsedModule | FileProblem:
    """Parse ``text`` with LibCST (call :func:`precheck` first: it guards the limits).

    With ``sliced`` (the same text with some functions blanked out, from precheck) LibCST
    parses that; :attr:`ParsedModule.text` stays the real text."""
    import libcst as cst

    if sliced is not None:
        try:
            return ParsedModule(cst.parse_module(sliced), source=text, layout=layout, parsed_text=sliced)
        except (cst.ParserSyntaxError, RecursionError):
            pass  # never expected: the whole text decides
    try:
        module = cst.parse_module(text)
    except cst.ParserSyntaxError as exc:
        return _syntax_problem(filename, text, exc)
    except RecursionError:
        return _too_deep(filename)
    return ParsedModule(module, layout=layout, parsed_text=text)


def _shape(tree: "ast.AST", skip: "set[int]") -> tuple[int, int]:
    """Node count and depth of what LibCST will see (nodes whose id is in ``skip`` are
    blanked out), without recursion (the tree may be very deep)."""
    import ast

    nodes, deepest, stack = 0, 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if depth > deepest:
            deepest = depth
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node) if id(child) not in skip)
    return nodes, deepest


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
