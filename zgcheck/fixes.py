"""Fixes: plans built from LibCST positions, expressed as text edits, and proven safe.

A plan never rewrites more than the zeroing statements it moves or inserts, so every
comment, blank line and the file's own formatting stay as they were. Before a fixed
text is accepted it must parse, re-check without the fixed findings, be stable under a
second fix pass, and have the same AST as the original once zeroing statements are
removed from both. Otherwise the original text is kept and the reason is returned.
"""
from __future__ import annotations

from zgcheck.sources import source_lines

import ast
from dataclasses import dataclass, field

import libcst as cst

from zgcheck.cstwalk import is_docstring, walk as walk_cst
from zgcheck.diagnostics import Diagnostic, Edit, Fix, Location
from zgcheck.events import Event
from zgcheck.parsing import ParsedModule

SAFE, UNSAFE = "safe", "unsafe"
MAX_PASSES = 6
FIX_ORDER = {"ZG001": 0, "ZG003": 1, "ZG005": 2, "ZG006": 3, "ZG002": 4, "ZG004": 5, "ZG007": 6}


@dataclass(frozen=True)
class Statement:
    """A statement line as the fixer sees it: where it is and which block holds it."""

    first: int  # first line, including comment lines attached above it
    start: int  # line of its first token
    last: int
    indent: str
    block: int  # id of the IndentedBlock (or Module) that holds it
    function: int  # id of the enclosing FunctionDef, 0 at module level
    single: bool  # the line holds just this one statement
    siblings: int  # how many statements its block has


class _StatementMapper(cst.CSTVisitor):
    def __init__(self, parsed: ParsedModule, lines: list[str]) -> None:
        self.parsed, self.lines = parsed, lines
        self.blocks: list[cst.CSTNode] = [parsed.module]
        self.functions: list[int] = [0]
        self.found: list[tuple[Statement, cst.SimpleStatementLine]] = []

    def visit_IndentedBlock(self, node: cst.IndentedBlock) -> None:
        self.blocks.append(node)

    def leave_IndentedBlock(self, original_node: cst.IndentedBlock) -> None:
        self.blocks.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.functions.append(id(node))

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self.functions.pop()

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> None:
        start, _ = self.parsed.start(node)
        last, _ = self.parsed.end(node)
        attached = 0
        for line in reversed(node.leading_lines):
            if line.comment is None or line.comment.value.startswith("# %%zgcheck"):
                break  # a notebook cell boundary never moves with a statement
            attached += 1
        text = self.lines[start - 1]
        block = self.blocks[-1]
        siblings = len(block.body)
        stmt = Statement(start - attached, start, last, text[: len(text) - len(text.lstrip())], id(block),
                         self.functions[-1], len(node.body) == 1, siblings)
        self.found.append((stmt, node))


@dataclass
class FixPlanner:
    """Builds Fix values for diagnostics of one module."""

    parsed: ParsedModule
    certain: set[str]
    _statements: list | None = None
    _lines: list[str] = field(default_factory=list)

    @property
    def newline(self) -> str:
        return "\r\n" if "\r\n" in self.parsed.text else "\n"

    def statements(self) -> list[tuple[Statement, cst.SimpleStatementLine]]:
        if self._statements is None:
            self._lines = source_lines(self.parsed.text)
            mapper = _StatementMapper(self.parsed, self._lines)
            walk_cst(self.parsed.module, mapper)
            self._statements = mapper.found
        return self._statements

    def statement_of(self, event: Event) -> Statement | None:
        """The statement line that holds ``event`` alone (None inside `if c: x()` one-liners)."""
        for stmt, node in self.statements():
            if stmt.start <= event.line <= stmt.last:
                return stmt if stmt.single else None
        return None

    def source_lines(self, stmt: Statement) -> list[str]:
        self.statements()
        return self._lines[stmt.first - 1 : stmt.last]

    # ----- edits ----------------------------------------------------------------
    def insert_after(self, anchor: Statement, code_lines: list[str], indent: str | None = None) -> Edit:
        indent = anchor.indent if indent is None else indent
        body = "".join(indent + line.lstrip() + self.newline if line.strip() else self.newline for line in code_lines)
        return self._insert_at(anchor.last + 1, body)

    def _insert_at(self, row: int, body: str) -> Edit:
        total = len(self._lines)
        if row > total and not self.parsed.text.endswith(("\n", "\r")):
            # The file does not end with a newline: put one before the new line instead.
            last = self._lines[-1]
            return Edit(self.newline + body.rstrip("\r\n"), Location(total, len(last) + 1), Location(total, len(last) + 1))
        return Edit(body, Location(row, 1), Location(row, 1))

    def delete(self, stmt: Statement) -> Edit:
        end = stmt.last + 1
        blank = lambda row: 1 <= row <= len(self._lines) and not self._lines[row - 1].strip()  # noqa: E731
        if blank(stmt.first - 1) and blank(end):
            end += 1  # do not leave two blank lines where the statement stood between them
        return Edit("", Location(stmt.first, 1), Location(end, 1))

    def move_after(self, moved: Statement, anchor: Statement) -> tuple[Edit, Edit]:
        """Delete ``moved`` (with the comment lines attached above it) and re-insert it,
        re-indented, right after ``anchor``."""
        lines = self.source_lines(moved)
        return self.delete(moved), self.insert_after(anchor, lines)

    def fix(self, applicability: str, message: str, *edits: Edit) -> Fix:
        return Fix(applicability, message, tuple(sorted(edits, key=lambda e: (e.location.row, e.location.column))))

    # ----- plans, one per rule ---------------------------------------------------
    def zero_after_step(self, steps: "Event | list[Event]") -> Fix | None:
        """ZG001 / ZG003: insert `O.zero_grad()` right after each step of O in the loop.

        Every step gets one: a reset after only some of them leaves the others stepping on
        what the previous step consumed."""
        steps = [steps] if isinstance(steps, Event) else steps
        if any(s.opt and s.opt.startswith(f"{s.target}[") for s in steps):
            return None  # a part of a multi-optimizer: its zero_grad() would clear the others
        edits, anchors = [], set()
        for step in steps:
            anchor = self.statement_of(step)
            if anchor is None or not step.target:
                return None
            following = self._lines[anchor.last].strip() if anchor.last < len(self._lines) else ""
            if anchor.last in anchors or following.startswith(f"{step.target}.zero_grad("):
                continue
            anchors.add(anchor.last)
            edits.append(self.insert_after(anchor, [f"{step.target}.zero_grad()"]))
        if not edits:
            return None
        first = steps[0]
        applicability = SAFE if all(s.opt in self.certain for s in steps) else UNSAFE
        return self.fix(applicability, f"Insert `{first.target}.zero_grad()` after `{first.text}`", *edits)

    def add_parens(self, ref: Event) -> Fix:
        """ZG001 on `optimizer.zero_grad` without a call."""
        end = Location(ref.end_line, ref.end_column)
        return self.fix(SAFE, f"Call `{ref.text}()`", Edit("()", end, end))

    def move_zero_after_step(self, zero: Event, step: Event, safe_when_same_block: bool = True) -> Fix | None:
        """ZG002 / ZG004: move the zero right after the step (same function only)."""
        if zero.via or zero.unresolved:
            return None  # the zero sits inside a call we would have to rewrite: never moved
        if step.unresolved:
            return None  # the step (and its condition) is inside a call we cannot see
        moved, anchor = self.statement_of(zero), self.statement_of(step)
        if moved is None or anchor is None or moved.function != anchor.function or moved.siblings < 2:
            return None
        if anchor.first <= moved.last and moved.first <= anchor.last:
            return None
        same = moved.block == anchor.block
        applicability = SAFE if (same or not safe_when_same_block) and zero.opt in self.certain | {None} else UNSAFE
        if not same:
            applicability = UNSAFE if safe_when_same_block else applicability
        return self.fix(applicability, f"Move `{zero.text}` after `{step.text}`", *self.move_after(moved, anchor))

    def zero_first_in_closure(self, step: Event) -> Fix | None:
        """ZG005: `O.zero_grad()` as the closure's first statement (after a docstring)."""
        func = step.closure_node
        if not isinstance(func, cst.FunctionDef) or not isinstance(func.body, cst.IndentedBlock) or not step.target:
            return None
        body = func.body.body
        index = 1 if body and is_docstring(body[0]) and len(body) > 1 else 0
        first = body[index]
        row, _ = self.parsed.start(first)
        attached = sum(1 for _ in _attached_comments(first))
        self.statements()
        text = self._lines[row - 1]
        indent = text[: len(text) - len(text.lstrip())]
        applicability = SAFE if step.opt in self.certain else UNSAFE
        edit = self._insert_at(row - attached, f"{indent}{step.target}.zero_grad(){self.newline}")
        return self.fix(applicability, f"Insert `{step.target}.zero_grad()` at the top of `{step.closure_name}`", edit)

    def zero_before_backward(self, backward: Event, moved: Event | None, other_step: Event, code: str,
                             opt: str | None) -> Fix | None:
        """ZG007: move ``moved`` (or insert ``code``) right before ``backward``, the first
        backward of the leaked-into optimizer after the other optimizer's step."""
        anchor, other = self.statement_of(backward), self.statement_of(other_step)
        if anchor is None or other is None or anchor.function != other.function:
            return None
        same = anchor.block == other.block
        if moved is None:
            edits = (self._insert_at(anchor.first, anchor.indent + code + self.newline),)
            message = f"Insert `{code}` before `{backward.text}`"
        else:
            source = self.statement_of(moved)
            if source is None or source.function != anchor.function or source.siblings < 2:
                return None
            if source.first <= anchor.last and anchor.first <= source.last:
                return None
            same = same and source.block == anchor.block
            body = "".join(anchor.indent + line.lstrip() + self.newline if line.strip() else self.newline
                           for line in self.source_lines(source))
            edits = (self.delete(source), self._insert_at(anchor.first, body))
            message = f"Move `{moved.text}` before `{backward.text}`"
        applicability = SAFE if same and opt in self.certain else UNSAFE
        return self.fix(applicability, message, *edits)

    def reset_after_update(self, update: Event, style_zero: bool) -> Fix | None:
        """ZG006: reset `p.grad` right after the manual update."""
        anchor = self.statement_of(update)
        if anchor is None or not update.grad_base:
            return None
        name = update.grad_var or update.grad_base
        code = f"{name}.grad.zero_()" if style_zero else f"{name}.grad = None"
        return self.fix(SAFE, f"Reset `{name}.grad` after the update", self.insert_after(anchor, [code]))


def _attached_comments(stmt: cst.CSTNode):
    for line in reversed(getattr(stmt, "leading_lines", ())):
        if line.comment is None:
            break
        yield line


# ----- applying fixes ------------------------------------------------------------
def apply_edits(text: str, edits: list[Edit]) -> str:
    """Apply non-overlapping edits (1-based rows and columns) to ``text``."""
    lines = source_lines(text, keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def offset(loc: Location) -> int:
        if loc.row > len(lines):
            return len(text)
        return starts[loc.row - 1] + loc.column - 1

    out = text
    for edit in sorted(edits, key=lambda e: (offset(e.location), offset(e.end_location)), reverse=True):
        out = out[: offset(edit.location)] + edit.content + out[offset(edit.end_location) :]
    return out


def _span(fix: Fix) -> list[tuple[int, int]]:
    return [(e.location.row, max(e.end_location.row, e.location.row)) for e in fix.edits]


def _overlaps(a: Fix, b: Fix) -> bool:
    return any(s1 <= e2 and s2 <= e1 for s1, e1 in _span(a) for s2, e2 in _span(b))


def choose(diagnostics: list[Diagnostic], unsafe: bool) -> list[Diagnostic]:
    """Fixable diagnostics whose edits do not touch each other (the rest wait a pass)."""
    chosen: list[Diagnostic] = []
    usable = lambda d: d.fix is not None and (d.fix.applicability != UNSAFE or unsafe)  # noqa: E731
    # A ZG007 fix puts a zero of its optimizer before that optimizer's own backward, which
    # also resets what ZG001 / ZG003 miss: their extra zero waits for the re-check.
    leaking = {d.optimizer for d in diagnostics if d.code == "ZG007" and usable(d)}
    # Resets after steps first: moving a zero under a condition before every step has its
    # reset can leave a conditional zero that the analysis then assumes aligned.
    for diag in sorted(diagnostics, key=lambda d: (FIX_ORDER.get(d.code, 9), d.location.row, d.location.column)):
        fix = diag.fix
        if not usable(diag) or (diag.code in ("ZG001", "ZG003") and diag.optimizer in leaking):
            continue
        if any(_overlaps(fix, other.fix) for other in chosen):
            continue
        chosen.append(diag)
    return chosen


@dataclass(frozen=True)
class FixResult:
    """The outcome of fixing one text: the new text (or the original) and why."""

    text: str
    fixed: tuple[Diagnostic, ...] = ()
    refused: str = ""

    @property
    def changed(self) -> bool:
        return bool(self.fixed) and not self.refused


def fix_text(text: str, filename: str, check, unsafe: bool = False) -> FixResult:
    """Fix ``text`` until nothing applicable is left, then prove the result safe.

    ``check(text) -> list[Diagnostic]`` is the analysis (injected to keep this module
    free of the runner)."""
    current, fixed = text, []
    for _ in range(MAX_PASSES):
        chosen = choose(check(current), unsafe)
        if not chosen:
            break
        current = apply_edits(current, [e for d in chosen for e in d.fix.edits])
        fixed.extend(chosen)
    if not fixed:
        return FixResult(text)
    reason = verify(text, current, fixed, check, unsafe)
    if reason:
        return FixResult(text, tuple(fixed), refused=reason)
    return FixResult(current, tuple(fixed))


def fingerprint(diag: Diagnostic, text: str) -> tuple[str, str, str]:
    lines = source_lines(text)
    line = lines[diag.location.row - 1].split("#")[0].strip() if diag.location.row <= len(lines) else ""
    return diag.code, diag.optimizer, line


def verify(original: str, fixed_text: str, fixed: list[Diagnostic], check, unsafe: bool) -> str:
    """Why ``fixed_text`` must not be written, or "" when it is proven safe."""
    try:
        cst.parse_module(fixed_text)
        new_tree = ast.parse(fixed_text)
    except (cst.ParserSyntaxError, SyntaxError) as exc:
        return f"the fixed code would not parse ({type(exc).__name__})"
    remaining = check(fixed_text)
    before = {fingerprint(d, original) for d in fixed}
    again = [d for d in remaining if fingerprint(d, fixed_text) in before]
    if again:
        return f"re-check still reports {again[0].code} at line {again[0].location.row}"
    if choose(remaining, unsafe):
        return "a second fix pass would change the code again"
    if _without_zeroing(ast.parse(original)) != _without_zeroing(new_tree):
        return "the fix would change more than zeroing statements"
    return ""


class _DropZeroing(ast.NodeTransformer):
    """Remove `x.zero_grad()`, `p.grad = None`, `p.grad.zero_()` statements."""

    def _is_zeroing(self, node: ast.stmt) -> bool:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Attribute):
            return node.value.attr == "zero_grad"  # `optimizer.zero_grad` that ZG001 completes
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            func = node.value.func
            return isinstance(func, ast.Attribute) and (
                func.attr == "zero_grad" or (func.attr == "zero_" and _is_grad(func.value))
            )
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            return _is_grad(node.targets[0]) and isinstance(node.value, ast.Constant) and node.value.value is None
        return False

    def generic_visit(self, node):
        super().generic_visit(node)
        for name in ("body", "orelse", "finalbody"):
            stmts = getattr(node, name, None)
            if isinstance(stmts, list) and stmts and isinstance(stmts[0], ast.stmt):
                kept = [s for s in stmts if not self._is_zeroing(s)]
                setattr(node, name, kept or [ast.Pass()])
        return node


def _is_grad(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "grad" or (
        isinstance(node, ast.Attribute) and node.attr == "data" and _is_grad(node.value)
    )


def _without_zeroing(tree: ast.AST) -> str:
    return ast.dump(_DropZeroing().visit(tree))
