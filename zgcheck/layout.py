"""Where each statement's text starts, read from CPython's `ast` instead of generated code.

Positions (:class:`zgcheck.parsing.ParsedModule`) are resolved one statement at a time,
and the recorder must be started at the line where that statement's LibCST text begins:
its leading blank and comment lines, its decorators, then the statement. Counting lines in
the generated code of every statement before it cost more than the whole analysis of most
files (a 3,000-line module: 0.3 s). The `ast` tree that the prefilter parsed anyway holds
each statement's first line; LibCST's node says how many leading lines it carries; the
difference is where its text begins.

A :class:`Block` is read for the module's body and for the body of every class, function,
loop, `with` and `if` (without `else`) in it, recursively: such a statement, when long,
is split into its statements, so that finding one event's position costs only its own. Statements joined by `;` are one LibCST line and one entry
here. The text LibCST parses may be the prefilter's sliced copy, in which a function is
blanked to `pass` on its first line: the same statements on the same first lines.
``ParsedModule`` checks every statement it resolves against the line recorded here and
falls back to counting generated code at the first disagreement.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Block:
    """One body's statements: the first line of each (its first decorator's, if any) and
    the line LibCST's range of the statement starts on (a `def` or `class` line)."""

    firsts: tuple[int, ...]
    starts: tuple[int, ...]


@dataclass(frozen=True)
class Layout:
    """The module's statements, and the body of each splittable statement among them
    (keyed by the line its range starts on, with its last line), recursively."""

    top: Block
    bodies: dict[int, tuple[int, Block]] = field(default_factory=dict)


# Statements with one body (an `else:` would be a second one): a long one is resolved as
# its head and its body's statements (ParsedModule._split).
_SPLITTABLE = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef, ast.For, ast.AsyncFor, ast.While, ast.With,
               ast.AsyncWith, ast.If)


def layout(tree: ast.Module) -> Layout:
    bodies: dict[int, tuple[int, Block]] = {}

    def block(body: list[ast.stmt]) -> Block:
        firsts: list[int] = []
        starts: list[int] = []
        last = 0  # the line the previous statement ends on
        for stmt in body:
            first = stmt.lineno
            decorators = getattr(stmt, "decorator_list", None)
            if decorators:
                first = min(first, *(d.lineno for d in decorators))
            end, last = last, stmt.end_lineno or stmt.lineno
            if firsts and first <= end:
                continue  # `a = f(\n  1); b = 2`: after a `;`, one statement line of LibCST
            firsts.append(first)
            starts.append(stmt.lineno)
            if type(stmt) in _SPLITTABLE and not getattr(stmt, "orelse", None):
                bodies[stmt.lineno] = (stmt.end_lineno or stmt.lineno, block(stmt.body))
        return Block(tuple(firsts), tuple(starts))

    return Layout(block(tree.body), bodies)
