"""Scopes: one walk over a module's statements recording, per function (and the module),
every assignment with its position in the statement order and its block path, the values
it returns, and where each backward call sits. :mod:`zgcheck.reach` follows a loss back
through these records.

Statements are walked through their fields, and expressions only to find backward
calls: a LibCST visitor would rebuild every node of the module.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import libcst as cst

from zgcheck.parsing import ParsedModule
from zgcheck.recognize import callee_name, squash

NO_GRAD_CONTEXTS = re.compile(r"(^|\.)(no_grad|inference_mode)\(\)$|set_grad_enabled\(False\)$")


@dataclass
class Assignment:
    value: cst.BaseExpression | None
    order: int
    path: tuple
    kind: str  # "set" replaces the value, "add" adds to it (`+=`, `d[k] = v`, `.append(v)`)
    no_grad: bool


@dataclass
class Scope:
    node: cst.CSTNode
    cls: str | None
    params: tuple[str, ...]
    no_grad: bool = False
    assigns: dict[str, list[Assignment]] = field(default_factory=dict)
    returns: list[Assignment] = field(default_factory=list)

    def add(self, key: str, record: Assignment) -> None:
        self.assigns.setdefault(key, []).append(record)


class ScopeIndex:
    """One walk over the statements: every scope's assignments and returns, and where each
    backward call sits. Statements are walked through their fields, and expressions only to
    find backward calls: a LibCST visitor would rebuild every node of the module."""

    def __init__(self, parsed: ParsedModule) -> None:
        self.parsed = parsed
        self.module = Scope(parsed.module, None, ())
        self.by_node: dict[int, Scope] = {}
        self.calls: dict[int, tuple[Scope, int, tuple]] = {}
        self.smalls: list[tuple[cst.CSTNode, Scope, int, tuple]] = []
        self.searched = False
        self.unpacked: list[list[str]] = []
        self.order = 0

    def text(self, node: cst.CSTNode) -> str:
        return squash(self.parsed.code(node))

    def run(self) -> "ScopeIndex":
        self.block(self.parsed.module.body, self.module, (), False, None)
        return self

    def record(self, scope: Scope, key: str, value, kind: str, path: tuple, no_grad: bool) -> None:
        scope.add(key, Assignment(value, self.order, path, kind, no_grad or scope.no_grad))

    def suite(self, suite, scope: Scope, path: tuple, no_grad: bool, cls: str | None) -> None:
        if isinstance(suite, cst.IndentedBlock):
            self.block(suite.body, scope, path, no_grad, cls)
        elif suite is not None:
            self.order += 1
            for small in suite.body:
                self.small(small, scope, path, no_grad)

    def block(self, body, scope: Scope, path: tuple, no_grad: bool, cls: str | None) -> None:
        for stmt in body:
            self.order += 1
            if isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    self.small(small, scope, path, no_grad)
            else:
                self.compound(stmt, scope, path, no_grad, cls)

    def compound(self, stmt, scope: Scope, path: tuple, no_grad: bool, cls: str | None) -> None:
        # A branch, a loop body or a handler may not run: assignments inside it do not
        # replace what came before. With and try bodies always start: they stay transparent.
        if isinstance(stmt, cst.FunctionDef):
            self.function(stmt, cls)
        elif isinstance(stmt, cst.ClassDef):
            self.suite(stmt.body, scope, path, no_grad, stmt.name.value)
        elif isinstance(stmt, cst.If):
            self.suite(stmt.body, scope, path + (("then", id(stmt)),), no_grad, cls)
            if isinstance(stmt.orelse, cst.If):
                self.compound(stmt.orelse, scope, path + (("else", id(stmt)),), no_grad, cls)
            elif stmt.orelse is not None:
                self.suite(stmt.orelse.body, scope, path + (("else", id(stmt)),), no_grad, cls)
        elif isinstance(stmt, (cst.For, cst.While)):
            if isinstance(stmt, cst.For):
                for key in target_keys(stmt.target, self.text):
                    self.record(scope, key, stmt.iter, "set", path, no_grad)
            self.suite(stmt.body, scope, path + (("loop", id(stmt)),), no_grad, cls)
            if stmt.orelse is not None:
                self.suite(stmt.orelse.body, scope, path + (("loop-else", id(stmt)),), no_grad, cls)
        elif isinstance(stmt, cst.With):
            off = no_grad or any(NO_GRAD_CONTEXTS.search(self.text(item.item)) for item in stmt.items)
            for item in stmt.items:
                if item.asname is not None and isinstance(item.asname.name, (cst.Name, cst.Attribute)):
                    self.record(scope, self.text(item.asname.name), item.item, "set", path, no_grad)
            self.suite(stmt.body, scope, path, off, cls)
        elif isinstance(stmt, (cst.Try, cst.TryStar)):
            self.suite(stmt.body, scope, path, no_grad, cls)
            for handler in stmt.handlers:
                self.suite(handler.body, scope, path + (("except", id(handler)),), no_grad, cls)
            for part in (stmt.orelse, stmt.finalbody):
                if part is not None:
                    self.suite(part.body, scope, path, no_grad, cls)
        elif isinstance(stmt, cst.Match):
            for case in stmt.cases:
                self.suite(case.body, scope, path + (("case", id(case)),), no_grad, cls)

    def function(self, node: cst.FunctionDef, cls: str | None) -> None:
        params = tuple(p.name.value for p in (*node.params.posonly_params, *node.params.params, *node.params.kwonly_params))
        no_grad = any(NO_GRAD_CONTEXTS.search(self.text(d.decorator)) or self.text(d.decorator).endswith("no_grad")
                      for d in node.decorators)
        # A method is defined directly in a class body; functions nested in it are not.
        scope = Scope(node, cls, params, no_grad=no_grad)
        self.by_node[id(node)] = scope
        self.suite(node.body, scope, (), False, None)

    def small(self, small, scope: Scope, path: tuple, no_grad: bool) -> None:
        if isinstance(small, cst.Assign):
            for target in small.targets:
                self.assigned(scope, target.target, small.value, "set", path, no_grad)
        elif isinstance(small, cst.AnnAssign) and small.value is not None:
            self.assigned(scope, small.target, small.value, "set", path, no_grad)
        elif isinstance(small, cst.AugAssign):
            self.assigned(scope, small.target, small.value, "add", path, no_grad)
        elif isinstance(small, cst.Return) and small.value is not None:
            scope.returns.append(Assignment(small.value, self.order, path, "set", no_grad or scope.no_grad))
        elif isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
            call = small.value
            if callee_name(call) in ("append", "extend", "add_", "update") and isinstance(call.func, cst.Attribute) and call.args:
                self.record(scope, self.text(call.func.value), call.args[0].value, "add", path, no_grad)
        value = getattr(small, "value", None)
        if isinstance(value, cst.Call) and callee_name(value) in ("backward", "manual_backward"):
            self.calls[id(value)] = (scope, self.order, path)  # the usual place: a statement of its own
        self.smalls.append((small, scope, self.order, path))

    def locate(self, node: cst.CSTNode) -> tuple[Scope, int, tuple] | None:
        """Where a backward call nested in an expression sits (searched on demand)."""
        if not self.searched:
            self.searched = True
            for small, scope, order, path in self.smalls:
                for call in backward_calls(small):
                    self.calls.setdefault(id(call), (scope, order, path))
        return self.calls.get(id(node))

    def assigned(self, scope: Scope, target, value, kind: str, path: tuple, no_grad: bool) -> None:
        if isinstance(value, cst.Call) and callee_name(value) == "optimizers" and isinstance(target, (cst.Tuple, cst.List)):
            self.unpacked.append(target_keys(target, self.text))  # Lightning: opt_g, opt_d = self.optimizers()
        if isinstance(target, cst.Subscript):
            self.record(scope, self.text(target.value), value, "add", path, no_grad)  # d["g"] = loss adds to d
            return
        for key in target_keys(target, self.text):
            self.record(scope, key, value, kind, path, no_grad)


def backward_calls(node: cst.CSTNode):
    """``backward`` / ``manual_backward`` calls inside a small statement (not in lambdas)."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, cst.Lambda):
            continue
        if isinstance(current, cst.Call) and callee_name(current) in ("backward", "manual_backward"):
            yield current
        for name in current.__dataclass_fields__:
            if name.startswith("whitespace") or name in ("lpar", "rpar", "semicolon", "comma"):
                continue
            value = getattr(current, name)
            if isinstance(value, (list, tuple)):
                stack.extend(v for v in value if isinstance(v, cst.CSTNode))
            elif isinstance(value, cst.CSTNode):
                stack.append(value)


def target_keys(target: cst.BaseExpression, text) -> list[str]:
    if isinstance(target, (cst.Tuple, cst.List)):
        return [k for e in target.elements for k in target_keys(e.value, text)]
    if isinstance(target, cst.StarredElement):
        return target_keys(target.value, text)
    if isinstance(target, (cst.Name, cst.Attribute)):
        return [text(target)]
    return []


def dotted(node: cst.CSTNode) -> bool:
    """``a`` or ``a.b.c``: a name the analysis can look up."""
    while isinstance(node, cst.Attribute):
        node = node.value
    return isinstance(node, cst.Name)


def dominates(record: Assignment, path: tuple) -> bool:
    return path[: len(record.path)] == record.path


def reaching(records: list[Assignment], order: int, path: tuple) -> list[Assignment]:
    """The assignments that can give a name its value at (order, path): the nearest one
    that surely ran, plus conditional or additive ones after it. None before the use (the
    value comes from an earlier iteration): all of them."""
    before = sorted((r for r in records if r.order < order), key=lambda r: -r.order)
    if not before:
        return list(records)
    chosen = []
    for record in before:
        chosen.append(record)
        if record.kind == "set" and dominates(record, path):
            break
    return chosen
