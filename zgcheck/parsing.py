"""LibCST parse once per candidate file; a syntax error is a value, not an exception."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from zgcheck.diagnostics import FileProblem

if TYPE_CHECKING:  # LibCST is imported lazily: a run over files without loops never pays for it
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


def parse(filename: str, text: str) -> ParsedModule | FileProblem:
    """Parse ``text`` with LibCST and resolve positions only."""
    import libcst as cst
    from libcst.metadata import MetadataWrapper, PositionProvider

    try:
        module = cst.parse_module(text)
    except cst.ParserSyntaxError as exc:
        return _syntax_problem(filename, text, exc)
    except RecursionError:
        return FileProblem(filename, "syntax", "code is nested too deeply to parse")
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    positions = wrapper.resolve(PositionProvider)
    return ParsedModule(module, dict(positions))


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
