"""LibCST parse once per candidate file; a syntax error is a value, not an exception."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from zgcheck.diagnostics import FileProblem

if TYPE_CHECKING:  # LibCST is imported lazily: a run over files without loops never pays for it
    import ast

    import libcst as cst
    from libcst.metadata import CodeRange


@dataclass
class ParsedModule:
    """A parsed module with the one metadata a rule needs: source positions."""

    module: "cst.Module"
    positions: "dict[cst.CSTNode, CodeRange]"

    def code(self, node: "cst.CSTNode") -> str:
        return self.module.code_for_node(node)

    def start(self, node: "cst.CSTNode") -> tuple[int, int]:
        pos = self.positions[node].start
        return pos.line, pos.column

    def end(self, node: "cst.CSTNode") -> tuple[int, int]:
        pos = self.positions[node].end
        return pos.line, pos.column


# LibCST's parser slows down quadratically on long operator chains (4,000 `a + a + ...`
# take 6 s) and its native code overflows the C stack near 8,000; real code stays far
# below 1,000 levels. It analyses about 10,000 nodes a second: 150,000 is ~15 s.
MAX_DEPTH = 1000
MAX_NODES = 150_000


def parse(filename: str, text: str) -> ParsedModule | FileProblem:
    """Parse ``text`` with LibCST and resolve positions only."""
    problem = _precheck(filename, text)
    if problem is not None:
        return problem
    import libcst as cst
    from libcst.metadata import MetadataWrapper, PositionProvider

    try:
        module = cst.parse_module(text)
    except cst.ParserSyntaxError as exc:
        return _syntax_problem(filename, text, exc)
    except RecursionError:
        return _too_deep(filename)
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    positions = wrapper.resolve(PositionProvider)
    return ParsedModule(module, dict(positions))


def _precheck(filename: str, text: str) -> FileProblem | None:
    """CPython's parser is fast and guarded: let it measure the tree before LibCST sees it."""
    import ast
    import warnings

    try:
        with warnings.catch_warnings():  # "invalid escape sequence" and the like are not ours to print
            warnings.simplefilter("ignore")
            tree = ast.parse(text, filename)
    except SyntaxError:
        return None  # maybe syntax newer than this interpreter: LibCST decides, CPython words it
    except (RecursionError, MemoryError):
        return _too_deep(filename)
    except ValueError as err:
        return FileProblem(filename, "syntax", f"cannot parse: {err}")
    nodes, depth = _shape(tree)
    if depth > MAX_DEPTH:
        return _too_deep(filename, f" (more than {MAX_DEPTH:,} levels)")
    if nodes > MAX_NODES:
        return FileProblem(filename, "limit", f"file is too large to analyse (more than {MAX_NODES:,} syntax nodes); skipped")
    return None


def _shape(tree: "ast.AST") -> tuple[int, int]:
    """Node count and depth, without recursion (the tree may be very deep); stops past a limit."""
    import ast

    nodes, deepest, stack = 0, 0, [(tree, 1)]
    while stack and nodes <= MAX_NODES and deepest <= MAX_DEPTH:
        node, depth = stack.pop()
        nodes += 1
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
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
