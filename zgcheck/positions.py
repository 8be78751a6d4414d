"""Source positions of the nodes of one statement, recorded in place.

LibCST's PositionProvider is a code generator that records where each node starts and
ends, but MetadataWrapper only takes a whole module: resolving one statement meant
wrapping it in a module of its own and shifting every range afterwards. This is the same
recorder (LibCST's own `position_provider.py`, reduced) started at any line; measured
about 3x faster per statement. ``tests/test_positions.py`` checks it against
PositionProvider node by node; if LibCST moves its internals, ``parsing`` falls back.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

from libcst._nodes.internal import CodegenState
from libcst._position import CodePosition, CodeRange

if TYPE_CHECKING:
    import libcst as cst

NEWLINE_RE = re.compile(r"\r\n?|\n")


@dataclass
class _Sink:
    """Where the recorder writes; named as LibCST's provider attribute expects."""

    _computed: dict = field(default_factory=dict)


@dataclass
class _PositionState(CodegenState):
    """Code generation that tracks line and column and records each node's range."""

    line: int = 1
    column: int = 0
    _stack: list = field(default_factory=list)

    def add_indent_tokens(self) -> None:
        self.tokens.extend(self.indent_tokens)
        for token in self.indent_tokens:
            self._advance(token)

    def add_token(self, value: str) -> None:
        self.tokens.append(value)
        self._advance(value)

    def _advance(self, value: str) -> None:
        segments = NEWLINE_RE.split(value)
        if len(segments) == 1:
            self.column += len(value)
        else:
            self.line += len(segments) - 1
            self.column = len(segments[-1])

    def before_codegen(self, node: "cst.CSTNode") -> None:
        self._stack.append(CodePosition(self.line, self.column))

    def after_codegen(self, node: "cst.CSTNode") -> None:
        start = self._stack.pop()
        computed = self.provider._computed  # type: ignore[attr-defined]
        if node not in computed:  # a syntactic position recorded inside wins
            computed[node] = CodeRange(start, CodePosition(self.line, self.column))

    @contextmanager
    def record_syntactic_position(self, node: "cst.CSTNode", *, start_node: "cst.CSTNode | None" = None,
                                  end_node: "cst.CSTNode | None" = None) -> Iterator[None]:
        start = CodePosition(self.line, self.column)
        try:
            yield
        finally:
            end = CodePosition(self.line, self.column)
            computed = self.provider._computed  # type: ignore[attr-defined]
            start = computed[start_node].start if start_node is not None else start
            end = computed[end_node].end if end_node is not None else end
            computed[node] = CodeRange(start, end)


def statement_positions(module: "cst.Module", stmt: "cst.CSTNode", first_line: int, indents: tuple[str, ...] = (),
                        code: "list[str] | None" = None) -> dict:
    """Ranges of ``stmt`` and everything inside it, its text starting at ``first_line``
    inside blocks indented by ``indents`` (a method of a class: the class body's indent).
    ``code`` receives the statement's generated text."""
    sink = _Sink()
    state = _PositionState(default_indent=module.default_indent, default_newline=module.default_newline,
                           provider=sink, line=first_line)
    state.indent_tokens = list(indents)
    stmt._codegen(state)
    if code is not None:
        code.append("".join(state.tokens))
    return sink._computed
