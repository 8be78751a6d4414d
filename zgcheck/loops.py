"""Extraction: a module's loops, step functions and their gradient events.

Each region is turned into the control-flow tree of :mod:`zgcheck.events`. Helpers
defined in the same module are inlined at their call sites (with their parameters
renamed to the caller's arguments), closures passed to ``step()`` are inlined before
the step, and loops over parameters that clear or update ``p.grad`` count as one event.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import libcst as cst

from zgcheck import freezing
from zgcheck.cstwalk import is_docstring, plain_code, walk as walk_cst
from zgcheck.conditions import ITERATION, MODE_ORDER, assigned_names, classify, is_accumulation_condition
from zgcheck.events import EMPTY, Ev, Event, If, Inline, Jump, Loop, Node, Region, Seq, Try, walk
from zgcheck.parsing import ParsedModule
from zgcheck.sources import LOSS_SCALER
from zgcheck.recognize import (
    NOT_OPTIMIZER_TOKENS, OPTIMIZER_CLASSES, ZERO_METHODS, ModuleFacts, callee_name, is_xla, last_name, listed_names,
    named_like, named_like_optimizer, receiver, says_it_resets, squash,
)

if TYPE_CHECKING:
    from zgcheck.project import LoadedModule, Resolver

INPLACE_UPDATES = frozenset({"add_", "sub_", "copy_", "addcdiv_", "addcmul_", "mul_", "lerp_"})
GRAD_CLEARS = frozenset({"zero_", "fill_"})
# Methods whose meaning comes from torch itself, never from a same-named user method.
HANDLED_METHODS = frozenset({"step", "backward", "manual_backward", "zero_grad", "clear_grad", "clear_gradients",
                             "__init__", "forward", "parameters", "named_parameters", "train", "eval"}) | INPLACE_UPDATES | GRAD_CLEARS
MAX_INLINE_DEPTH = 6
SYNC_CONDITION = "accelerator.sync_gradients"
EVENT_MARKERS = ("backward", "step", "zero_grad", "clear_grad", ".grad", "optimizer", "requires_grad")
CALLED = re.compile(r"([A-Za-z_]\w*)\s*\(")
# Expressions that can hold no call (their text generated just to look for "(" cost more
# than walking the others).
_WITHOUT_CALLS = frozenset({cst.Name, cst.Integer, cst.Float, cst.SimpleString, cst.Ellipsis})
_GRAD_TEST = re.compile(r"(?:not\s+)?[\w.]+\.(?:grad|requires_grad)(?:\s+is(?:\s+not)?\s+None)?")
# A modulo test without `== 0`: `(i + 1) % k`, `step % accum != 0` (no other comparison).
_MODULO_NONZERO = re.compile(r"[^=!<>]+%[^=!<>]+?(?:!=0)?")
_IS_NOT_NONE = re.compile(r"[\w.\[\]'\"]+isnotNone")
_DOTTED_NAME = re.compile(r"(?<![\w.])[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
PARAM_LOOP_RE = re.compile(r"parameters\(|\bparameters\b|param_groups|\[['\"]params['\"]\]|\bparams?\b|weights?\b")


@dataclass(frozen=True)
class Context:
    """Where a statement sits: its path of loops and conditions, scope and renames."""

    path: tuple = ()
    cls: str | None = None
    scope: tuple[tuple[str, cst.FunctionDef], ...] = ()
    subst: tuple[tuple[str, str], ...] = ()
    stack: tuple[int, ...] = ()
    accumulate: bool = False
    param_vars: tuple[tuple[str, str], ...] = ()
    # Loop variables over parameters whose loop picks some of them (`if "head" in name:`):
    # a clear of their `.grad` is partial (freezing those), not a reset of the optimizer.
    filtered_params: frozenset[str] = frozenset()
    # The condition model (ARCHITECTURE.md): names that change from one iteration to the
    # next. `loop_variant`: assigned in an enclosing loop (or its target). `call_variant`:
    # parameters and locals of a function run once per batch, until a loop of its own.
    loop_variant: frozenset[str] = frozenset()
    call_variant: frozenset[str] = frozenset()
    collections: tuple[tuple[str, tuple[str, ...]], ...] = ()  # `*optimizers` -> the arguments
    site: "tuple[ParsedModule, cst.Call] | None" = None  # the checked file's call into another module
    via: str = ""  # that module's helper, named for messages
    # Collections an earlier loop of this block went over or appended to while it ran a
    # backward or a step: that loop is assumed to have run, so they are not empty.
    filled: frozenset[str] = frozenset()
    # The parameters of the function whose body this is: a call of one (`closure()` in a
    # custom optimizer's `step(self, closure)`) is not the module's function of that name.
    params: frozenset[str] = frozenset()
    func: "cst.FunctionDef | None" = None  # the function whose body this is

    @property
    def in_loop(self) -> bool:
        return any(kind == "loop" for kind, _ in self.path)

    def local_def(self, name: str) -> cst.FunctionDef | None:
        for key, node in reversed(self.scope):
            if key == name:
                return node
        return None


class _CallCollector(cst.CSTVisitor):
    """Calls of an expression in evaluation order (arguments before the call)."""

    def __init__(self) -> None:
        self.calls: list[cst.Call] = []

    def leave_Call(self, original_node: cst.Call) -> None:
        self.calls.append(original_node)

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False


@dataclass
class Extractor:
    parsed: ParsedModule
    facts: ModuleFacts
    events: dict[int, Event] = field(default_factory=dict)
    inlined: set[int] = field(default_factory=set)
    resolver: "Resolver | None" = None  # calls into other modules of the project
    counter: "itertools.count" = field(default_factory=lambda: itertools.count(1))  # shared with helpers' extractors
    _relevant: dict[int, bool] = field(default_factory=dict)
    _generators: dict[int, bool] = field(default_factory=dict)
    modes: dict[str, str] = field(default_factory=dict)  # condition text -> conditions.SWITCH / ...
    shown: dict[str, str] = field(default_factory=dict)  # condition key -> the text as written, for messages
    _assigned: dict[int, frozenset[str]] = field(default_factory=dict)
    # `should_step = step % accum == 0` in a function: the test a later `if should_step:` makes.
    named_conditions: dict[tuple, tuple[str, str]] = field(default_factory=dict)
    _unguarded: dict[int, frozenset[str]] = field(default_factory=dict)

    def assigned(self, node: cst.For | cst.While | cst.FunctionDef) -> frozenset[str]:
        """Names a loop (its target included) or a function body assigns; memoised."""
        key = id(node)
        if key not in self._assigned:
            body = node.body.body if isinstance(node, cst.FunctionDef) and isinstance(node.body, cst.IndentedBlock) else ()
            self._assigned[key] = assigned_names(body if isinstance(node, cst.FunctionDef) else (node,))
        return self._assigned[key]

    def generator(self, func: cst.FunctionDef) -> bool:
        if id(func) not in self._generators:
            self._generators[id(func)] = _is_generator(func)
        return self._generators[id(func)]

    def relevant(self, func: cst.FunctionDef) -> bool:
        """Can inlining ``func`` add a gradient event? Its text, or that of a module helper
        it calls, must mention one. Memoised: big files inline the same helpers often."""
        key = id(func)
        if key in self._relevant:
            return self._relevant[key]
        self._relevant[key] = False  # breaks recursion between helpers
        text = self.parsed.body_text(func)
        found = any(marker in text for marker in EVENT_MARKERS)
        if not found:
            for name in set(CALLED.findall(text)):
                helpers = [self.facts.functions.get(name)] + self.facts.methods_named(name)
                if any(h is not None and h is not func and self.relevant(h) for h in helpers):
                    found = True
                    break
        self._relevant[key] = found
        return found

    # ----- helpers -------------------------------------------------------------
    def text(self, node: cst.CSTNode, ctx: Context) -> str:
        raw = squash(self.parsed.code(node))
        for old, new in ctx.subst:
            if raw == old or raw.startswith((old + ".", old + "[", old + "(")):
                return new + raw[len(old):]
        return raw

    def new_id(self) -> int:
        return next(self.counter)

    def event(self, kind: str, node: cst.CSTNode, ctx: Context, **kw) -> Ev:
        parsed = self.parsed
        if ctx.site is not None:
            # An event inside another module's helper is shown (and fixed) at the call in
            # the checked file; its receiver is named as the caller names it, if it can be.
            parsed, node = ctx.site
            kw["target"] = _caller_text(kw.get("target", ""), ctx.subst)
            kw["closure_node"] = None
            kw["via"] = ctx.via
        (line, col), (end_line, end_col) = parsed.start(node), parsed.end(node)
        text = " ".join(parsed.code(node).split())
        ev = Event(self.new_id(), kind, text, line, col + 1, end_line, end_col + 1, node=node, subst=ctx.subst, **kw)
        self.events[ev.id] = ev
        return Ev(ev, ctx.path)

    # ----- statements ----------------------------------------------------------
    def block(self, body, ctx: Context) -> Seq:
        return self.block_and_context(body, ctx)[0]

    def block_and_context(self, body, ctx: Context) -> tuple[Seq, Context]:
        """A block's statements, and the context after them (the functions it defined,
        the collections its loops filled)."""
        items: list[Node] = []
        for stmt in body:
            if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
                if isinstance(stmt, cst.FunctionDef):
                    ctx = replace(ctx, scope=ctx.scope + ((stmt.name.value, stmt),))
                continue
            found = self.statement(stmt, ctx)
            items.extend(found)
            if isinstance(stmt, cst.For) and any(isinstance(n, Ev) for item in found for n in walk(item)):
                ctx = replace(ctx, filled=ctx.filled | self.filled_by(stmt, ctx))
        return Seq(tuple(items)), ctx

    def filled_by(self, loop: cst.For, ctx: Context) -> frozenset[str]:
        """What a loop that ran goes over, and the lists its body appends to."""
        names = {self.text(loop.iter, ctx)}
        names.update(_APPENDED.findall(self.parsed.body_text(loop)))
        return frozenset(names)

    def suite(self, suite: cst.BaseSuite, ctx: Context) -> Seq:
        if isinstance(suite, cst.IndentedBlock):
            return self.block(suite.body, ctx)
        return self.small(suite.body, ctx)

    def small(self, body, ctx: Context) -> Seq:
        items: list[Node] = []
        for small in body:
            items.extend(self.small_statement(small, ctx))
        return Seq(tuple(items))

    def statement(self, stmt: cst.CSTNode, ctx: Context) -> list[Node]:
        if isinstance(stmt, cst.SimpleStatementLine):
            return list(self.small(stmt.body, ctx).items)
        if isinstance(stmt, cst.If):
            node = self.if_node(stmt, ctx)
            if isinstance(node, Seq):
                return list(node.items)
            return [node] if node.then.items or node.orelse.items else []
        if isinstance(stmt, cst.For):
            return self.for_node(stmt, ctx)
        if isinstance(stmt, cst.While):
            return _unless_eventless(self.loop(stmt, ctx, infinite=self.text(stmt.test, ctx) in ("True", "1")))
        if isinstance(stmt, cst.With):
            return self.with_node(stmt, ctx)
        if isinstance(stmt, (cst.Try, cst.TryStar)):
            return [self.try_node(stmt, ctx)]
        if isinstance(stmt, cst.Match):
            return [self.match_node(stmt, ctx)]
        return []

    def small_statement(self, small: cst.CSTNode, ctx: Context) -> list[Node]:
        if isinstance(small, cst.Break):
            return [Jump("break")]
        if isinstance(small, cst.Continue):
            return [Jump("continue")]
        if isinstance(small, cst.Raise):
            return [Jump("raise")]
        if isinstance(small, cst.Return):
            return (self.expr_events(small.value, ctx) if small.value else []) + [Jump("return")]
        if isinstance(small, cst.Expr):
            value = small.value
            if isinstance(value, cst.Attribute) and value.attr.value == "zero_grad":
                key = self.text(value.value, ctx)
                if self.facts.is_optimizer(key):
                    return [self.event("zero_ref", small, ctx, opt=self.facts.canon(key))]
            return self.expr_events(value, ctx)
        if isinstance(small, (cst.Assign, cst.AugAssign, cst.AnnAssign)):
            if isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Name):
                self.name_condition(small.targets[0].target.value, small.value, ctx)
            items = self.expr_events(small.value, ctx) if small.value is not None else []
            return items + self.assignment_events(small, ctx)
        if isinstance(small, cst.Assert):
            return self.expr_events(small.test, ctx)
        return []

    def loop_body(self, suite: cst.BaseSuite, ctx: Context) -> Seq:
        """A loop's body. `if (i + 1) % k: continue` directly in it skips the rest of the
        body on those iterations: the rest is that `if`'s other branch (the accumulation
        idiom written with `continue`, read as `if (i + 1) % k == 0: ...`)."""
        if not isinstance(suite, cst.IndentedBlock):
            return self.suite(suite, ctx)
        body = list(suite.body)
        for index, stmt in enumerate(body):
            if (isinstance(stmt, cst.If) and stmt.orelse is None and _only_continue(stmt.body)
                    and is_accumulation_condition(self.text(stmt.test, ctx)) and index + 1 < len(body)):
                head, ctx_after = self.block_and_context(body[:index], ctx)
                guarded = self.if_node(stmt, ctx_after, rest=body[index + 1:])
                return Seq(head.items + ((guarded,) if not isinstance(guarded, Seq) else guarded.items))
        return self.block(body, ctx)

    def name_condition(self, name: str, value: cst.BaseExpression, ctx: Context) -> None:
        """Remember (or forget) what an accumulation test assigned to ``name`` says."""
        key = (ctx.stack, name)
        if isinstance(value, cst.Call) and not value.args:
            # `do_step = self._should_do_step()`: a method of this class (or a function of
            # the module) that only returns its test.
            value = self.returned_test(value, ctx) or value
        if not isinstance(value, _CONDITION_NODES):  # a call, a name, a literal: no modulo test
            self.named_conditions.pop(key, None)
            return
        text = self.text(value, ctx)
        if is_accumulation_condition(text) and not re.search(r"\w\s*\(", text) and "%" in text:
            self.named_conditions[key] = (text, " ".join(self.parsed.code(value).split()))
        else:
            self.named_conditions.pop(key, None)

    def named_condition(self, name: str, ctx: Context) -> tuple[str, str] | None:
        """What ``name`` was assigned in this function, or in one it is nested in (a local
        `_backward` closure testing its caller's `need_update`)."""
        for depth in range(len(ctx.stack), -1, -1):
            found = self.named_conditions.get((ctx.stack[:depth], name))
            if found is not None:
                return found
        return None

    def returned_test(self, call: cst.Call, ctx: Context) -> cst.BaseExpression | None:
        """The expression a one-statement `return` function or method of this module returns
        (`self._should_do_step()`), or None."""
        func = call.func
        found = None
        if isinstance(func, cst.Name):
            found = self.facts.functions.get(func.value)
        elif isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self" and ctx.cls:
            found = self.facts.methods.get((ctx.cls, func.attr.value))
        if found is None or not isinstance(found.body, cst.IndentedBlock):
            return None
        body = [s for s in found.body.body if not is_docstring(s)]
        if len(body) != 1 or not isinstance(body[0], cst.SimpleStatementLine) or len(body[0].body) != 1:
            return None
        stmt = body[0].body[0]
        return stmt.value if isinstance(stmt, cst.Return) else None

    def if_node(self, stmt: cst.If, ctx: Context, rest: list | None = None, closed: bool | None = None) -> Node:
        if closed is None:
            closed = _closed_choice(stmt)
        if stmt.orelse is None and rest is None and self.fills_missing_grad(stmt):
            return EMPTY
        if stmt.orelse is None and self.guards_emptiness(stmt):
            # `if params[0].grad is not None: for p in params: p.grad.zero_()`: the test only
            # skips the reset when there is nothing to reset yet (the first iteration).
            then = self.suite(stmt.body, ctx)
            found = [n.event for n in walk(then) if isinstance(n, Ev)]
            if found and all(e.kind == "zero" for e in found):
                return Seq(tuple(then.items))
        cond = self.text(stmt.test, ctx)
        negated = False
        while cond.startswith("not") and isinstance(stmt.test, cst.UnaryOperation) and not negated:
            cond, negated = self.text(stmt.test.expression, ctx), True
        cond = _outer_parens_removed(cond)
        named = self.named_condition(cond, ctx) if isinstance(stmt.test.expression if negated else stmt.test, cst.Name) else None
        if named is not None:  # `if should_step:` after `should_step = step % accum == 0`
            cond = _outer_parens_removed(named[0])
        is_not_none = not negated and cond.endswith("isnotNone") and _IS_NOT_NONE.fullmatch(cond) is not None
        written = " ".join(self.parsed.code(stmt.test.expression if negated else stmt.test).split())
        if named is not None:
            written = named[1]
        if is_not_none:
            # `if optimizer is not None:` and `if optimizer is None:` test one thing: the
            # paths through both know which side they are on.
            cond, negated = cond[: -len("isnotNone")] + "isNone", True
            written = re.sub(r"\s+is\s+not\s+None\s*$", " is None", written.strip("() "))
        elif "%" in cond and _MODULO_NONZERO.fullmatch(cond):
            # `if (i + 1) % k != 0:` and `if (i + 1) % k:` are `(i + 1) % k == 0` negated:
            # the step of `if (i + 1) % k: continue` sits on the side that test is true.
            bare = not cond.endswith("!=0")
            cond, negated = (cond if bare else cond[:-3]) + "==0", not negated
            inner = written.strip()
            if negated is False and inner.startswith("not "):
                inner = inner[4:].strip()
            written = f"{inner} == 0" if bare else re.sub(r"\s*!=\s*0\s*$", " == 0", inner)
        written = written[1:-1].strip() if written.startswith("(") and squash(written[1:-1]) == cond else written
        if squash(written) == cond:  # (not when a helper's parameters were renamed)
            self.shown.setdefault(cond, written)
        known = self.known_truth(cond, ctx)
        if known is None and ctx.filled:
            known = _emptiness(cond, ctx.filled)
        if known is not None and rest is not None:
            return Seq((Jump("continue"),)) if known != negated else self.block(rest, ctx)
        if known is not None:
            # `if optimizer is not None:` with an optimizer, `if None is not None:` once a
            # helper was called with None: one branch only.
            taken = stmt.body if known != negated else stmt.orelse
            if isinstance(taken, cst.If):
                return self.if_node(taken, ctx)
            if isinstance(taken, cst.Else):
                taken = taken.body
            return Seq(tuple(self.suite(taken, ctx).items)) if taken is not None else EMPTY
        if ctx.param_vars and stmt.orelse is None and rest is None and self.skips_only_empty(stmt.test, ctx):
            # `for p in params: if p.grad is not None: p.grad.zero_()` (a hand-written
            # zero_grad): the test only skips parameters that have nothing to clear.
            return Seq(tuple(self.suite(stmt.body, ctx).items))
        mode = self.condition_mode(cond, ctx)
        # Each branch knows which side of the condition it is on ("if" / "else").
        then_side, else_side = ("else", "if") if negated else ("if", "else")
        then = self.suite(stmt.body, replace(ctx, path=ctx.path + ((then_side, cond),))) if rest is None else EMPTY
        else_ctx = replace(ctx, path=ctx.path + ((else_side, cond),))
        orelse = EMPTY
        if rest is not None:  # `if cond: continue`, then the rest of the loop's body
            orelse = self.block(rest, else_ctx)
        elif isinstance(stmt.orelse, cst.If) and closed and stmt.orelse.orelse is None:
            # `if kind == "a": ... elif kind == "b": ...` over the values an option allows:
            # the last test is the only choice left, not a path that takes no branch.
            orelse = self.suite(stmt.orelse.body, else_ctx)
        elif isinstance(stmt.orelse, cst.If):
            nested = self.if_node(stmt.orelse, else_ctx, closed=closed)
            if isinstance(nested, Seq):
                orelse = nested
            else:
                orelse = Seq((nested,)) if nested.then.items or nested.orelse.items else EMPTY
        elif isinstance(stmt.orelse, cst.Else):
            orelse = self.suite(stmt.orelse.body, else_ctx)
        if negated:
            then, orelse = orelse, then
        return If(cond, then, orelse, is_accumulation_condition(cond) and mode == ITERATION, mode)

    def condition_mode(self, cond: str, ctx: Context) -> str:
        """The condition's mode here (conditions.classify), recorded for the region: when
        one text has several modes, the most varying wins."""
        mode = classify(cond, ctx.loop_variant | ctx.call_variant)
        self.modes[cond] = max(mode, self.modes.get(cond, mode), key=MODE_ORDER.index)
        return mode

    def known_truth(self, cond: str, ctx: Context | None = None) -> bool | None:
        """`X is None` / `X is not None` when X is `None`, an optimizer the function steps or
        zeroes outside any test of it (`if optimizer is not None: optimizer.zero_grad()`
        before an unconditional `optimizer.step()`), or a known optimizer of the module that
        is not a parameter here (`optimizer=None` may well be None)."""
        if ctx is not None and re.fullmatch(r"\w+", cond):
            cond = self.left_default(cond, ctx) or cond  # `def closure(zero_grad=True)` called `closure()`
        if cond in ("True", "False"):  # `if zero_grad:` in a helper called with `zero_grad=False`
            return cond == "True"
        match = re.fullmatch(r"(.+?)is(not)?None", cond)
        if match is None:
            return None
        subject = match.group(1)
        if subject == "None":
            value_is_none = True
        elif ctx is not None and ctx.func is not None and subject in self.used_unguarded(ctx.func, ctx):
            value_is_none = False
        elif (self.facts.is_optimizer(subject) and subject in self.facts.optimizers | set(self.facts.aliases)
              and (ctx is None or subject not in ctx.params)):
            value_is_none = False
        else:
            return None
        return value_is_none != bool(match.group(2))

    def used_unguarded(self, func: cst.FunctionDef, ctx: Context) -> frozenset[str]:
        """Receivers the function steps or zeroes (`X.step(`, `X.zero_grad(`) outside any
        `if` whose test reads `X is ...`: X cannot be None where the function runs."""
        found = self._unguarded.get(id(func))
        if found is not None:
            return found
        names: set[str] = set()

        def scan(statements, guards: tuple[str, ...]) -> None:
            for stmt in statements:
                if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
                    continue
                if isinstance(stmt, cst.If):
                    test = guards + (squash(self.parsed.code(stmt.test)),)
                    scan(_statements(stmt.body), test)
                    orelse = stmt.orelse
                    if isinstance(orelse, cst.If):
                        scan((orelse,), test)
                    elif isinstance(orelse, cst.Else):
                        scan(_statements(orelse.body), test)
                    continue
                if isinstance(stmt, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
                    for match in _USED.finditer(squash(self.parsed.code(stmt))):
                        receiver = match.group(1)
                        if not any(receiver + "is" in guard for guard in guards):
                            names.add(receiver)
                    continue
                for part in ("body", "orelse", "finalbody"):
                    inner = getattr(stmt, part, None)
                    if isinstance(inner, (cst.Else, cst.Finally)):
                        inner = inner.body
                    if isinstance(inner, cst.BaseSuite):
                        scan(_statements(inner), guards)
                for handler in getattr(stmt, "handlers", ()):
                    scan(_statements(handler.body), guards)

        scan(_statements(func.body), ())
        found = self._unguarded[id(func)] = frozenset(names)
        return found

    def loop(self, stmt: cst.For | cst.While, ctx: Context, infinite: bool = False) -> Loop:
        loop_id = self.new_id()
        # Inside a loop, what varies is what the loop assigns; a per-batch function's
        # parameters hold still while its own loop runs.
        variant = ctx.loop_variant | self.assigned(stmt)
        inner = replace(ctx, path=ctx.path + (("loop", loop_id),), loop_variant=variant, call_variant=frozenset())
        if isinstance(stmt, cst.For):
            inner = self.bind_param_loop(stmt, inner)
        body = self.loop_body(stmt.body, inner)
        orelse = self.suite(stmt.orelse.body, ctx) if stmt.orelse else EMPTY
        # An eventless loop is dropped by the caller; not asking for its line spares
        # resolving positions in code that has nothing to do with gradients.
        eventful = any(isinstance(n, Ev) for part in (body, orelse) for n in walk(part))
        line = 0
        if eventful:
            line = ctx.site[0].start(ctx.site[1])[0] if ctx.site is not None else self.parsed.start(stmt)[0]
        return Loop(loop_id, body, orelse, line, infinite=infinite, via=ctx.via if ctx.site is not None else "")

    def bind_param_loop(self, stmt: cst.For, ctx: Context) -> Context:
        target, source = stmt.target, self.text(stmt.iter, ctx)
        iterable = stmt.iter
        if (isinstance(target, cst.Tuple) and isinstance(iterable, cst.Call) and callee_name(iterable) == "zip"
                and isinstance(iterable.func, cst.Name) and len(iterable.args) == len(target.elements)):
            # `for p, g in zip(model.parameters(), grads)`: each name walks its own argument.
            pairs = [(e.value.value, self.text(a.value, ctx)) for e, a in zip(target.elements, iterable.args)
                     if isinstance(e.value, cst.Name)]
            picked = self.picks_parameters(stmt.body.body, ctx)
            filtered = ctx.filtered_params | ({name for name, _ in pairs} if picked else set())
            return replace(ctx, param_vars=ctx.param_vars + tuple(pairs), filtered_params=frozenset(filtered))
        if isinstance(target, cst.Tuple) and target.elements:
            target = target.elements[-1].value
        if not isinstance(target, cst.Name):
            return ctx
        filtered = ctx.filtered_params | ({target.value} if self.picks_parameters(stmt.body.body, ctx) else set())
        return replace(ctx, param_vars=ctx.param_vars + ((target.value, source),),
                       filtered_params=frozenset(filtered))

    def grad_test_roots(self, test: cst.BaseExpression) -> list[str] | None:
        """The tensors a test made only of `p.grad` / `p.requires_grad` checks (`p.grad is
        not None and p.requires_grad` -> ["p", "p"]); None for any other test."""
        roots = []
        for part in re.split(r"\s+(?:and|or)\s+", " ".join(self.parsed.code(test).split())):
            part = part.strip("() ")
            if not _GRAD_TEST.fullmatch(part):
                return None
            roots.append(part.removeprefix("not").strip().split(".")[0])
        return roots

    def fills_missing_grad(self, stmt: cst.If) -> bool:
        """`if p.grad is None: p.grad = torch.zeros_like(p)`: a gradient is created where
        there is none yet; nothing that was there is cleared (DomainBed's MLDG)."""
        match = re.fullmatch(r"\(?\s*([\w.\[\]]+)\.grad\s+is\s+None\s*\)?", " ".join(self.parsed.code(stmt.test).split()))
        if match is None or not isinstance(stmt.body, (cst.IndentedBlock, cst.SimpleStatementSuite)):
            return False
        lines = _statements(stmt.body)
        smalls = [small for line in lines for small in getattr(line, "body", (None,))]
        return bool(smalls) and all(
            isinstance(small, cst.Assign) and len(small.targets) == 1
            and squash(self.parsed.code(small.targets[0].target)) in (f"{match.group(1)}.grad", f"{match.group(1)}.grad.data")
            for small in smalls)

    def guards_emptiness(self, stmt: cst.If) -> bool:
        """Is the test of ``stmt`` only `... is not None` checks of gradients (`w.grad`,
        `params[0].grad`) or of a collection its body loops over (`params is not None`),
        with at least one gradient among them?"""
        code = " ".join(self.parsed.code(stmt.test).split())
        if ".grad" not in code or " or " in code:
            return False
        body = self.parsed.code(stmt.body)
        grads = 0
        for part in re.split(r"\s+and\s+", code):
            subject = re.fullmatch(r"\(?\s*([\w.\[\]'\"]+)\s+is\s+not\s+None\s*\)?", part)
            if subject is None:
                return False
            name = subject.group(1)
            if re.fullmatch(r"[\w.\[\]'\"]+\.grad", name):
                grads += 1
            elif not re.search(rf"\bfor\s+\w+\s+in\s+{re.escape(name)}\s*:", body):
                return False
        return grads > 0

    def skips_only_empty(self, test: cst.BaseExpression, ctx: Context) -> bool:
        """Is ``test`` about a loop parameter's `.grad` / `.requires_grad` alone?"""
        roots = self.grad_test_roots(test)
        loop_vars = {name for name, _ in ctx.param_vars}
        return roots is not None and all(root in loop_vars for root in roots)

    def picks_parameters(self, body, ctx: Context) -> bool:
        """Does a parameter loop's body choose which parameters it touches (an `if` on the
        name, the shape, a set of frozen names; or such an `if` guarding `continue`)?
        Tests of `p.grad` / `p.requires_grad` only skip what has nothing to clear."""
        for stmt in body:
            if isinstance(stmt, cst.If):
                if self.grad_test_roots(stmt.test) is None:
                    return True
                inner = stmt.body.body if isinstance(stmt.body, cst.IndentedBlock) else ()
                if self.picks_parameters(inner, ctx):
                    return True
        return False

    def for_node(self, stmt: cst.For, ctx: Context) -> list[Node]:
        iter_text = self.text(stmt.iter, ctx)
        body_code = self.parsed.body_text(stmt)
        if PARAM_LOOP_RE.search(iter_text) and (".grad" in body_code or "requires_grad" in body_code) and not stmt.orelse:
            # `for p in model.parameters(): p.grad = None` clears (or updates) all of them:
            # one event, not a loop that might run zero times.
            return list(self.suite(stmt.body, self.bind_param_loop(stmt, ctx)).items)
        members = self.members(iter_text, ctx)
        if isinstance(stmt.target, cst.Name) and members is not None and not stmt.orelse:
            # `for opt in [enc_opt, dec_opt]: opt.zero_grad()`: once per known member.
            target = stmt.target.value
            items: list[Node] = []
            for member in members:
                renamed = replace(ctx, subst=((target, member),) + ctx.subst)
                items.extend(self.suite(stmt.body, renamed).items)
            return items
        fanned = self.fan_out(stmt, iter_text, ctx) if not stmt.orelse else None
        if fanned is not None:
            return fanned
        return _unless_eventless(self.loop(stmt, ctx))

    def fan_out(self, stmt: cst.For, iter_text: str, ctx: Context) -> list[Node] | None:
        """A loop over a collection of optimizers (`for opt in optimizers:`, `for name, opt
        in self.optimizers.items():`, `enumerate(...)`) acts once on each, not repeatedly.
        A loop over schedulers (`for k, v in self.lr_schedulers.items():
        v.step()`) steps no optimizer, even where another method's `v` is one."""
        target, collection = _loop_variable(stmt.target, iter_text)
        if target is None:
            return None
        if collection and named_like(collection, NOT_OPTIMIZER_TOKENS):
            renamed = replace(ctx, subst=((target, f"{collection}[*]"),) + ctx.subst)
            return _unless_eventless(self.loop(stmt, renamed))
        if self.facts.is_optimizer(target) or (isinstance(stmt.target, cst.Tuple) and named_like_optimizer(collection)):
            # `for opt in optimizers: opt.step()` steps each optimizer once, not repeatedly.
            return list(self.suite(stmt.body, ctx).items)
        return None

    def members(self, iter_text: str, ctx: Context) -> tuple[str, ...] | None:
        """The known members of a collection of optimizers being iterated: a literal list or
        tuple of names, a `*optimizers` parameter, a container assigned in the module."""
        literal = re.fullmatch(r"[\[(]([\w.]+(?:,[\w.]+)*),?[\])]", iter_text)
        if literal:
            names = tuple(literal.group(1).split(","))
        else:
            source = re.sub(r"\.values\(\)$", "", iter_text)
            names = dict(ctx.collections).get(source)
            if names is None:
                names = self.facts.containers.get(source)
        if names and all(self.facts.is_optimizer(n) for n in names):
            return names
        return None

    def with_node(self, stmt: cst.With, ctx: Context) -> list[Node]:
        items: list[Node] = []
        for item in stmt.items:
            call = item.item
            if isinstance(call, cst.Call) and callee_name(call) == "accumulate":
                ctx = replace(ctx, accumulate=True)
            else:
                items.extend(self.expr_events(call, ctx))
        return items + list(self.suite(stmt.body, ctx).items)

    def try_node(self, stmt: cst.Try | cst.TryStar, ctx: Context) -> Node:
        body = self.suite(stmt.body, ctx)
        handlers = tuple(self.suite(h.body, ctx) for h in stmt.handlers)
        orelse = self.suite(stmt.orelse.body, ctx) if stmt.orelse else EMPTY
        final = self.suite(stmt.finalbody.body, ctx) if stmt.finalbody else None
        return Try(body, handlers, orelse, final)

    def match_node(self, stmt: cst.Match, ctx: Context) -> Node:
        result: Seq = EMPTY
        for index, case in reversed(list(enumerate(stmt.cases))):
            cond = f"<match {self.parsed.start(stmt)[0]} case {index}>"
            case_ctx = replace(ctx, path=ctx.path + (("if", cond),))
            result = Seq((If(cond, self.suite(case.body, case_ctx), result),))
        return result

    # ----- expressions ---------------------------------------------------------
    def expr_events(self, expr: cst.BaseExpression | None, ctx: Context) -> list[Node]:
        if expr is None or type(expr) in _WITHOUT_CALLS:
            return []
        collector = _CallCollector()
        walk_cst(expr, collector)
        items: list[Node] = []
        for call in collector.calls:
            items.extend(self.call_events(call, ctx))
        return items

    def call_events(self, call: cst.Call, ctx: Context) -> list[Node]:
        name = callee_name(call)
        recv = receiver(call)
        facts = self.facts
        frozen = freezing.from_call(call, lambda n: self.text(n, ctx), facts, dict(ctx.param_vars))
        if frozen is not None:
            return [self.freeze_event(frozen, call, ctx)]
        if recv is None:
            if name in ctx.params and not ctx.local_def(name):
                # A parameter: the function the caller passed, when the call is inlined.
                passed = dict(ctx.subst).get(name, "")
                helper = (ctx.local_def(passed) or facts.functions.get(passed)) if passed.isidentifier() else None
                if helper is None:
                    scaled = self.loss_scaler_call(call, name, ctx)
                    return scaled if scaled is not None else self.reset_by_name(call, name, ctx)
            else:
                helper = ctx.local_def(name) or facts.functions.get(name)
            if helper:
                return self.inline(helper, call, ctx, skip_self=False)
            foreign = self.project_call(name, None, call, ctx)
            if foreign is None:
                foreign = self.loss_scaler_call(call, name, ctx)
            return foreign if foreign is not None else self.reset_by_name(call, name, ctx)
        key = self.text(recv, ctx)
        if key == "self" and ctx.cls and (ctx.cls, name) in facts.methods:
            return self.inline(facts.methods[(ctx.cls, name)], call, ctx, skip_self=True)
        if key == "self" and ctx.cls and self.resolver is not None and name not in HANDLED_METHODS:
            # A method the class inherits from a base class of another module
            # (`self.clip_and_step()` of rl_games' A2CBase): its body runs on this `self`.
            inherited = self.resolver.method(ctx.cls, name)
            if inherited is not None and inherited[0] is not None:
                return self.inline_foreign(inherited[0], inherited[2], inherited[1], call, ctx, skip_self=True)
        if name in ZERO_METHODS or (says_it_resets(name) and facts.is_optimizer(key)):
            # A hand-written optimizer's own reset (`inner_optimizer.set_grads_none()`) too.
            if facts.is_optimizer(key):
                raw = squash(self.parsed.code(recv))
                return [self.synced(ctx, key, lambda c: self.event("zero", call, c, opt=facts.canon(key), target=raw))]
            return self.optimizer_args_zeroed(call, ctx) or [self.event("zero", call, ctx, models=(key,))]
        if name in ("backward", "manual_backward"):
            if key.startswith("super(") or facts.is_engine(key) or "dist_autograd" in key:
                return []
            return [self.event("backward", call, ctx)]
        if name == "step":
            items = self.step_events(call, key, ctx)
            if items and self.step_zeroes(key, call):
                # A wrapper optimizer whose step() clears the gradients itself (ColossalAI's
                # GeminiOptimizer): the step is followed by a zero.
                items.append(self.event("zero", call, ctx, opt=facts.canon(key), target=squash(self.parsed.code(recv))))
            return items
        if name in ("first_step", "second_step") and facts.is_optimizer(key) and not facts.is_engine(key):
            # Sharpness-aware minimisation (davda54/sam): each phase uses the gradients,
            # and resets them itself when asked (`zero_grad=True`).
            # A class that cannot be seen may reset in either phase: a weak zero.
            opt, raw = facts.canon(key), squash(self.parsed.code(recv))
            items = [self.synced(ctx, opt, lambda c: self.event("step", call, c, opt=opt, target=raw))]
            flag = next((a.value for a in call.args if a.keyword is not None and a.keyword.value == "zero_grad"), None)
            zeroes = None if flag is not None and not isinstance(flag, cst.Name) else self.method_zeroes(key, call, name)
            if zeroes is None and isinstance(flag, cst.Name) and flag.value in ("True", "False"):
                zeroes = flag.value == "True"  # the class cannot be seen: the literal decides
            if zeroes is not False:
                items.append(self.event("zero", call, ctx, opt=opt, target=raw, weak=zeroes is None))
            return items
        if name == "optimizer_step" and call.args and is_xla(key):
            target = self.text(call.args[0].value, ctx)
            raw = squash(self.parsed.code(call.args[0].value))
            return [self.event("step", call, ctx, opt=facts.canon(target), target=raw)]
        method = self.resolve_method(name, key)
        if method is not None:
            return self.inline(method, call, ctx, skip_self=True, this=key)
        foreign = self.project_call(name, key, call, ctx)
        if foreign is not None:
            return foreign
        if says_it_resets(name):  # self._zero_grad(), model.zero_grads(), strategy.clear_grads(opt)
            return self.reset_by_name(call, name, ctx)
        if name in GRAD_CLEARS and re.search(r"\.grad(\.data)?$", key) and _clears(call):
            return self.grad_clear(call, key.rsplit(".grad", 1)[0], ctx)
        if name in INPLACE_UPDATES:
            base = key[: -len(".data")] if key.endswith(".data") else key
            if re.search(rf"(?<![\w.]){re.escape(base)}(\.data)?\.grad\b", self.text(call, ctx)[len(key):]):
                return [self.manual_event(call, base, ctx)]
        return []

    def loss_scaler_call(self, call: cst.Call, name: str, ctx: Context) -> list[Node] | None:
        """`loss_scaler(loss, optimizer, ..., update_grad=...)` with a loss scaler whose class
        cannot be seen (handed in by the caller): timm's `NativeScaler` and its copies in
        DeiT, MAE, ConvNeXt and Swin run backward, then the step when `update_grad` is true
        (always, without it)."""
        positional = [a for a in call.args if a.keyword is None and not a.star]
        if not name.endswith(LOSS_SCALER) or len(positional) < 2 or (name in self.facts.instances and name not in ctx.params):
            return None  # (an instance built here is its class's: resolved, or left alone; a parameter is the caller's)
        key = self.text(positional[1].value, ctx)
        if not self.facts.is_optimizer(key):
            return None
        opt = self.facts.canon(key)
        backward = self.event("backward", call, ctx, unresolved=True)
        raw = squash(self.parsed.code(positional[1].value))
        update = next((a.value for a in call.args if a.keyword is not None and a.keyword.value in ("update_grad", "need_update")), None)
        if update is None or self.text(update, ctx) == "True":
            return [backward, self.synced(ctx, opt, lambda c: self.event("step", call, c, opt=opt, target=raw, unresolved=True))]
        cond = _outer_parens_removed(self.text(update, ctx))
        written = " ".join(self.parsed.code(update).split())
        named = self.named_condition(cond, ctx) if isinstance(update, cst.Name) else None
        if named is not None:  # `need_update=need_update` after `need_update = (i + 1) % k == 0`
            cond, written = _outer_parens_removed(named[0]), named[1]
        mode = self.condition_mode(cond, ctx)
        if squash(written) == cond:
            self.shown.setdefault(cond, written)
        inner = replace(ctx, path=ctx.path + (("if", cond),))
        step = self.synced(inner, opt, lambda c: self.event("step", call, c, opt=opt, target=raw, unresolved=True))
        return [backward, If(cond, Seq((step,)), EMPTY, is_accumulation_condition(cond) and mode == ITERATION, mode)]

    def reset_by_name(self, call: cst.Call, name: str, ctx: Context) -> list[Node]:
        """A call we cannot see into whose name says it clears gradients: a zero of each
        optimizer handed to it (or, with none, a zero of something unknown)."""
        if not says_it_resets(name):
            return []
        return self.optimizer_args_zeroed(call, ctx) or [self.event("zero", call, ctx, unknown=True, unresolved=True)]

    def optimizer_args_zeroed(self, call: cst.Call, ctx: Context) -> list[Node]:
        items: list[Node] = []
        for arg in call.args:
            if arg.keyword is None and not arg.star:
                key = self.text(arg.value, ctx)
                if self.facts.is_optimizer(key):
                    raw = squash(self.parsed.code(arg.value))
                    items.append(self.event("zero", call, ctx, opt=self.facts.canon(key), target=raw, unresolved=True))
        return items

    def project_call(self, name: str, key: str | None, call: cst.Call, ctx: Context) -> list[Node] | None:
        """A call into another module of the project (or a method of a class whose instance
        the receiver is): its body inlined at the call, or None when it cannot be resolved."""
        resolver = self.resolver
        if resolver is None or not re.search(r"\w", name):
            return None
        facts = self.facts
        if key is None:
            found = resolver.function(name)
            if found is not None:
                return self.inline_foreign(found[0], found[1], None, call, ctx, skip_self=False)
            targets = [(name, "__call__")]
        else:
            found = resolver.module_function(key, name)
            if found is not None:
                return self.inline_foreign(found[0], found[1], None, call, ctx, skip_self=False)
            if facts.is_optimizer(key):
                return None  # a custom optimizer's own step() is torch's business
            targets = [(key, name), (f"{key}.{name}", "__call__")]
        for holder, method_name in targets:
            cls_ref = facts.instance_of(holder)
            method = resolver.method(cls_ref, method_name) if cls_ref else None
            if method is None:
                continue
            loaded, cls, func = method
            if loaded is None:
                return self.inline(func, call, ctx, skip_self=True, this=holder, cls=cls)
            stored = self.constructor_stores(holder, loaded, cls, ctx)
            return self.inline_foreign(loaded, func, cls, call, ctx, skip_self=True, stored=stored)
        return None

    def constructor_stores(self, holder: str, loaded: "LoadedModule", cls: str, ctx: Context) -> tuple[tuple[str, str], ...]:
        """`trainer = Trainer(D, d_optimizer)` with `self.d_optimizer = d_optimizer` in the
        other module's `Trainer.__init__`: inside its methods, `self.d_optimizer` is the
        caller's `d_optimizer` (as renames)."""
        call = self.facts.constructions.get(holder) or self.facts.constructions.get(self.facts.canon(holder))
        init = loaded.facts.methods.get((cls, "__init__"))
        if call is None or init is None or not isinstance(init.body, cst.IndentedBlock):
            return ()
        params = [p.name.value for p in init.params.params][1:]
        passed: dict[str, str] = {}
        for index, arg in enumerate(call.args):
            if arg.star:
                break
            name = arg.keyword.value if arg.keyword else (params[index] if index < len(params) else None)
            if name:
                passed[name] = self.text(arg.value, ctx)
        stores = []
        for targets, param in _stored_parameters(init):
            value = passed.get(param)
            if value is not None and len(targets) == 1 and targets[0].startswith("self.") and re.fullmatch(r"[\w.]+", value):
                stores.append((targets[0], value))
        return tuple(stores)

    def inline_foreign(self, loaded: "LoadedModule", func: cst.FunctionDef, cls: str | None, call: cst.Call,
                       ctx: Context, skip_self: bool, stored: tuple[tuple[str, str], ...] = ()) -> list[Node]:
        """Another module's helper, extracted in its own module with the caller's names."""
        from zgcheck.project import merged_facts

        if id(func) in ctx.stack or len(ctx.stack) >= MAX_INLINE_DEPTH:
            return []
        # (Functions handed in stay this module's: the other module's extractor cannot place them.)
        inner = replace(self.bind(func, call, ctx, skip_self, cls), scope=())
        if stored:
            inner = replace(inner, subst=inner.subst + stored)
        if ctx.site is None:
            inner = replace(inner, site=(self.parsed, call), via=func.name.value)
        other = Extractor(loaded.parsed, merged_facts(self.facts, loaded), events=self.events, modes=self.modes, shown=self.shown,
                          resolver=self.resolver.nested(loaded), counter=self.counter)
        return other.expand(func, inner)

    def closure_once(self, key: str) -> bool:
        """Does the optimizer ``key`` call a step closure at most once per step, or reset
        the gradients between its calls? Known by its class: torch's optimizers other than
        LBFGS call it once; a class of this module or the project is read (its `step`);
        another library's class is taken to re-evaluate only when its name says it
        searches (LBFGS, BFGS, line search, Newton). Unknown class: no."""
        cls_ref = self.facts.instance_of(key)
        if not cls_ref:
            return False
        name = last_name(cls_ref)
        if name in OPTIMIZER_CLASSES:
            return name != "LBFGS"
        found = self.own_step(cls_ref)
        if found is None:
            return not _SEARCHES.search(name)
        return _calls_closure_once(found[1], found[0].code(found[1]))

    def own_step(self, cls_ref: str) -> "tuple[ParsedModule, cst.FunctionDef] | None":
        """The `step` method of a class of this module or the project (not torch's)."""
        return None if last_name(cls_ref) in OPTIMIZER_CLASSES else self.class_method(cls_ref, "step")

    def class_method(self, cls_ref: str, method: str) -> "tuple[ParsedModule, cst.FunctionDef] | None":
        """Method ``method`` of the class ``cls_ref`` names, in this module or the project
        (the module that holds it, and its node)."""
        if self.resolver is not None:
            found = self.resolver.method(cls_ref, method)
            if found is not None:
                return (found[0].parsed if found[0] is not None else self.parsed, found[2])
        elif (cls_ref, method) in self.facts.methods:
            return self.parsed, self.facts.methods[(cls_ref, method)]
        return None

    def gradient_free_step(self, key: str) -> bool:
        """Is ``key`` an instance of a class of the project whose `step` never reads a
        gradient (a proximal operator applied to the weights, DeepRobust's PGD)? Its step
        consumes nothing, so a zero before it wipes nothing it needs."""
        cls_ref = self.facts.instance_of(key)
        found = self.own_step(cls_ref) if cls_ref else None
        if found is None:
            return False
        code = _WITHOUT_COMMENTS.sub("", found[0].body_text(found[1]))
        return not re.search(r"grad|super\(|closure\s*\(|\.step\(", code)

    def left_default(self, name: str, ctx: Context) -> str | None:
        """`None`, `True` or `False`: the default of a parameter of this function that the
        call being analysed did not pass (`def _do_step(self, closure=None)` called
        `_do_step()`); None for anything else."""
        if ctx.func is None or name not in ctx.params or name in dict(ctx.subst) or not ctx.stack[1:]:
            return None  # (a function analysed on its own is called from anywhere)
        params = ctx.func.params
        found = next((p for p in (*params.params, *params.kwonly_params) if p.name.value == name), None)
        default = found.default if found is not None else None
        return default.value if isinstance(default, cst.Name) and default.value in ("None", "True", "False") else None

    def step_zeroes(self, key: str, call: cst.Call | None = None, method: str = "step") -> bool:
        """Is ``key`` an instance of a class (of this module or the project) whose `step`
        method (or ``method``) calls `zero_grad`? Not when only under a flag parameter the
        ``call`` leaves false (`def step(self, zero_grad=False): ... if zero_grad:
        self.zero_grad()`)."""
        return self.method_zeroes(key, call, method) is True

    def method_zeroes(self, key: str, call: cst.Call | None, method: str) -> bool | None:
        """:meth:`step_zeroes`, None when the class or its method cannot be seen."""
        cls_ref = self.facts.instance_of(key)
        found = self.class_method(cls_ref, method) if cls_ref else None
        if found is None:
            return None
        parsed, func = found
        code = parsed.code(func)
        if "zero_grad(" not in code:
            return False
        for param in func.params.params[1:]:
            flag = param.name.value
            if "zero" in flag and re.search(rf"\bif\s+{re.escape(flag)}\s*:", code) and not re.search(rf"\bif\s+not\s+{re.escape(flag)}\b", code):
                passed = next((a.value for a in (call.args if call is not None else ()) if a.keyword and a.keyword.value == flag), None)
                value = passed if passed is not None else param.default
                return isinstance(value, cst.Name) and value.value == "True"
        return True

    def resolve_method(self, name: str, key: str) -> cst.FunctionDef | None:
        """`model.optimizer_step(epoch, i, opt)`: the method of that name when exactly one
        class of the module defines it and it can hold gradient events. Optimizers,
        engines and scalers keep their own meaning (a custom Optimizer's `step`)."""
        if name in HANDLED_METHODS or self.facts.is_optimizer(key) or self.facts.is_engine(key) or self.facts.is_scaler(key):
            return None
        facts = self.facts
        if key in facts.plain_data or facts.canon(key) in facts.plain_data:
            return None  # `self.log.update(...)` of `self.log = {}`: the dict's method
        found = facts.methods_named(name)
        if len(found) != 1 or not self.relevant(found[0]):
            return None
        instance = facts.instance_of(key)
        if instance is not None and last_name(instance) != self.class_of(found[0]):
            return None  # an instance of another class (`self.meter = AverageMeter()`)
        return found[0]

    def step_events(self, call: cst.Call, key: str, ctx: Context) -> list[Node]:
        facts = self.facts
        if call.args and facts.is_scaler(key):
            opt = facts.canon(self.text(call.args[0].value, ctx))
            return [self.event("step", call, ctx, opt=opt, target=squash(self.parsed.code(call.args[0].value)))]
        if facts.is_engine(key) or not facts.is_optimizer(key) or self.gradient_free_step(key):
            return []
        opt = facts.canon(key)
        closure_arg = next((a.value for a in call.args if a.keyword is None or a.keyword.value == "closure"), None)
        if isinstance(closure_arg, (cst.SimpleString, cst.Integer)):
            # `optimizer.step("predictor")`: one part of a multi-optimizer (StyleTTS2), keyed
            # as such; `optimizer.zero_grad()` clears every part.
            opt = f"{opt}[{squash(self.parsed.code(closure_arg))}]"
        if isinstance(closure_arg, (cst.SimpleString, cst.ConcatenatedString, cst.Integer, cst.Float)) or (
                isinstance(closure_arg, cst.Name) and (closure_arg.value == "None" or self.left_default(closure_arg.value, ctx) == "None")):
            closure_arg = None  # `optimizer.step("predictor")` (a key), `step(closure=None)`
        if closure_arg is None:
            # `step(options={"closure": closure, ...})` (full-batch L-BFGS packages): the
            # step uses the gradients already there, then evaluates the closure in its line
            # search. Where it zeroes is not the order a plain closure has: it may zero.
            closure_arg = next((a.value for a in call.args if a.keyword is not None and a.keyword.value in ("options", "opts")), None)
        closure, closure_name, closure_node = None, "", None
        if isinstance(closure_arg, cst.IfExp) and all(isinstance(e, cst.Name) for e in (closure_arg.body, closure_arg.orelse)):
            # `step(closure if not mixed else closure_mixed)`: either closure, by the test.
            cond = _outer_parens_removed(self.text(closure_arg.test, ctx))
            branches = []
            for side, choice in (("if", closure_arg.body), ("else", closure_arg.orelse)):
                target = ctx.local_def(choice.value) or facts.functions.get(choice.value)
                if target is None or id(target) in ctx.stack:
                    break
                self.inlined.add(id(target))
                inner = replace(ctx, path=ctx.path + ((side, cond),), stack=ctx.stack + (id(target),))
                branches.append(self.block(target.body.body, inner))
            else:
                mode = self.condition_mode(cond, ctx)
                closure = Seq((If(cond, branches[0], branches[1], False, mode),))
                closure_name = " ".join(self.parsed.code(closure_arg).split())
        elif isinstance(closure_arg, cst.Name):
            target = ctx.local_def(closure_arg.value) or facts.functions.get(closure_arg.value)
            if target is not None and id(target) not in ctx.stack:
                self.inlined.add(id(target))
                closure_name, closure_node = closure_arg.value, target
                # Lexically inside the same helper: its renames (optimizer -> caller's) hold.
                closure = self.block(target.body.body, replace(ctx, stack=ctx.stack + (id(target),)))
        elif isinstance(closure_arg, cst.Attribute) and self.text(closure_arg.value, ctx) == "self" and ctx.cls:
            target = facts.methods.get((ctx.cls, closure_arg.attr.value))
            if target is not None and id(target) not in ctx.stack:
                self.inlined.add(id(target))
                closure_name, closure_node = "self." + closure_arg.attr.value, target
                inner = replace(ctx, stack=ctx.stack + (id(target),), subst=())
                closure = self.block(target.body.body, inner)
        elif isinstance(closure_arg, cst.Lambda):
            closure_name = "lambda"
            closure = Seq(tuple(self.expr_events(closure_arg.body, ctx)))
        items: list[Node] = [Inline(closure)] if closure is not None else []
        if closure is None and closure_arg is not None:
            # A closure we cannot see (functools.partial, a callable object) may zero first.
            items.append(self.synced(ctx, opt, lambda c: self.event("zero", call, c, opt=opt, weak=True)))
        raw = squash(self.parsed.code(receiver(call)))

        once = closure is not None and self.closure_once(key)

        def step(c: Context) -> Ev:
            return self.event("step", call, c, opt=opt, closure=closure, closure_name=closure_name,
                              closure_node=closure_node, target=raw, closure_once=once)

        return items + [self.synced(ctx, opt, step)]

    def freeze_event(self, frozen: freezing.Freeze, node: cst.CSTNode, ctx: Context) -> Ev:
        """A module frozen or unfrozen (requires_grad, Lightning's toggle_optimizer)."""
        kind, models, opt, unknown = frozen
        return self.event(kind, node, ctx, models=models, opt=opt, unknown=unknown)

    def synced(self, ctx: Context, opt: str, make) -> Node:
        """Inside ``accelerator.accumulate`` (and anywhere for an optimizer that Accelerate
        prepared in a module that accumulates), step and zero_grad are skipped together
        while accumulating: model them under one shared condition."""
        prepared = self.facts.uses_accumulate and self.facts.canon(opt) in self.facts.prepared
        if not (ctx.accumulate or prepared):
            return make(ctx)
        inner = replace(ctx, path=ctx.path + (("if", SYNC_CONDITION),))
        self.modes[SYNC_CONDITION] = ITERATION
        return If(SYNC_CONDITION, Seq((make(inner),)), EMPTY, True, ITERATION)

    def grad_clear(self, node: cst.CSTNode, base: str, ctx: Context, weak: bool = False) -> list[Node]:
        """`p.grad = None` / `p.grad.zero_()`: all parameters when p walks a parameter source."""
        source = dict(ctx.param_vars).get(base)
        if source is None and base in self.facts.sole_params:
            return [self.event("zero", node, ctx, weak=weak, grad_base=base, opt=self.facts.canon(self.facts.sole_params[base]))]
        if source is None or base in ctx.filtered_params:
            return [self.event("zero", node, ctx, weak=weak, grad_base=base)]
        groups = re.match(r"(.+)\.param_groups$", source)
        if groups is None:
            outer = re.match(r"(\w+)\[['\"]params['\"]\]$", source)
            outer_source = dict(ctx.param_vars).get(outer.group(1)) if outer else None
            groups = re.match(r"(.+)\.param_groups$", outer_source or "")
        if groups:
            return [self.event("zero", node, ctx, weak=weak, grad_base=base, opt=self.facts.canon(groups.group(1)))]
        owners = self.facts.param_owners(source)
        if owners:
            return [self.event("zero", node, ctx, weak=weak, grad_base=base, models=tuple(sorted(owners)))]
        return [self.event("zero", node, ctx, weak=weak, grad_base=base, unknown=True)]

    def assignment_events(self, small, ctx: Context) -> list[Node]:
        targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
        items: list[Node] = []
        if isinstance(small.value, cst.Call):
            # A new optimizer bound here: its parameters are often new too. Treat it as a
            # possible reset rather than report gradients an old instance left behind.
            rebound = [k for k in self.bound_names(targets, ctx) if self.facts.is_optimizer(k)]
            # Lightning's self.optimizers() hands back the same optimizers every time; and
            # inside a loop, an optimizer over parameters that are the same every
            # iteration (`SGD(net.parameters())`, `net` built before the loop) starts on
            # their old gradients.
            if rebound and callee_name(small.value) != "optimizers" and not self.same_parameters(small.value, ctx):
                return [self.event("zero", small, ctx, opt=self.facts.canon(k), weak=True) for k in rebound]
        for target in targets:
            key = self.text(target, ctx)
            if small.value is not None and key.endswith(".requires_grad"):
                value = self.text(small.value, ctx)
                frozen = freezing.from_assignment(key, small.value, value, self.facts, dict(ctx.param_vars))
                items.append(self.freeze_event(frozen, small, ctx))
                continue
            grad = re.match(r"(.+?)\.grad(\.data)?$", key)
            if grad and isinstance(small, (cst.Assign, cst.AnnAssign)) and not ".grad" in self.text(small.value, ctx):
                # `p.grad = grad_from_worker`: replaced by a gradient computed elsewhere. What
                # was there is gone (no stale claim), but nothing was wiped (weak).
                replaced = not _CLEARED_VALUE.fullmatch(self.text(small.value, ctx))
                items.extend(self.grad_clear(small, grad.group(1), ctx, weak=replaced))
                continue
            base = key[: -len(".data")] if key.endswith(".data") else key
            in_place = isinstance(small, cst.AugAssign) or key.endswith(".data")
            if in_place and small.value is not None and not grad:
                pattern = rf"(?<![\w.]){re.escape(base)}(\.data)?\.grad\b"
                if re.search(pattern, self.text(small.value, ctx)):
                    items.append(self.manual_event(small, base, ctx))
        return items

    def manual_event(self, node: cst.CSTNode, base: str, ctx: Context) -> Ev:
        """A hand-written update of ``base``. A parameter loop's variable over tensors a
        caller listed (`sgd([w, b], lr)`) is keyed by those tensors (`[w,b]`): a reset of
        each by name then reaches it."""
        source = dict(ctx.param_vars).get(base)
        listed = dict(ctx.collections).get(source) if source is not None else None
        if listed:
            return self.event("manual", node, ctx, grad_base=f"[{','.join(listed)}]", grad_var=base)
        return self.event("manual", node, ctx, grad_base=base)

    def same_parameters(self, call: cst.Call, ctx: Context) -> bool:
        """Inside a loop: does the optimizer built by ``call`` get only parameters of names
        the loop never assigns (so they keep their gradients from the last iteration)?"""
        variant = ctx.loop_variant | ctx.call_variant
        params = next((a.value for a in call.args if a.keyword is None or a.keyword.value == "params"), None)
        if not ctx.loop_variant or params is None:
            return False
        names = set(_DOTTED_NAME.findall(self.text(params, ctx)))
        # `self.model` may be rebuilt by a method the loop calls (`self._create_model()`).
        if not names or any(n == "self" or n.startswith("self.") for n in names):
            return False
        return not any(n == v or n.startswith((v + ".", v + "[")) for n in names for v in variant)

    def bound_names(self, targets, ctx: Context) -> list[str]:
        names: list[str] = []
        for target in targets:
            elements = target.elements if isinstance(target, (cst.Tuple, cst.List)) else [target]
            names.extend(self.text(e.value if isinstance(e, cst.BaseElement) else e, ctx) for e in elements)
        return names

    # ----- helpers inlined at their call ----------------------------------------
    def inline(self, helper: cst.FunctionDef, call: cst.Call, ctx: Context, skip_self: bool,
               this: str | None = None, cls: str | None = None) -> list[Node]:
        """The helper's body at its call, parameters renamed to the caller's arguments.
        ``this``: the receiver of a resolved method (``model`` of `model.hook(...)`); the
        method's own `self.` names then refer to its class."""
        if id(helper) in ctx.stack or len(ctx.stack) >= MAX_INLINE_DEPTH:
            return []
        self.inlined.add(id(helper))
        if this is not None and cls is None:
            cls = self.class_of(helper)
        return self.expand(helper, self.bind(helper, call, ctx, skip_self, cls if this is not None else ctx.cls))

    def bind(self, helper: cst.FunctionDef, call: cst.Call, ctx: Context, skip_self: bool, cls: str | None) -> Context:
        """The context of a helper's body at this call: renames, `*args` members, what varies."""
        params = [p.name.value for p in helper.params.params]
        subst: list[tuple[str, str]] = []
        if skip_self and params:
            # `self` stays `self`: the module's facts about `self.optimizer` are keyed so.
            params = params[1:]
        positional = [a for a in call.args if a.keyword is None and not a.star]
        varying: set[str] = set()
        listed_members: list[tuple[str, tuple[str, ...]]] = []
        handed: list[tuple[str, cst.FunctionDef]] = []
        for index, arg in enumerate(call.args):
            if arg.star:
                break
            name = arg.keyword.value if arg.keyword else (params[index] if index < len(params) else None)
            value = self.text(arg.value, ctx)
            if name and isinstance(arg.value, cst.Name):
                # A function handed in (`self._step_optimizer(step_fn)`): the parameter is it.
                passed = ctx.local_def(arg.value.value) or self.facts.functions.get(arg.value.value)
                if passed is not None:
                    handed.append((name, passed))
            listed = listed_names(arg.value)
            if name and listed:
                # `sgd([w, b], lr)`: a loop over the parameter goes over these tensors.
                listed_members.append((name, tuple(self.text(e, ctx) for e in listed)))
            # Identity pairs too (`train_step(G, D)` into `def train_step(G, D)`): they tell
            # reach that G is the caller's G, not an unknown parameter.
            if name and re.fullmatch(r"[\w.\[\]'\"()]+", value):
                subst.append((name, value))
            elif name and classify(value, ctx.loop_variant | ctx.call_variant) == ITERATION:
                varying.add(name)  # `update_grad=(i + 1) % k == 0`: the parameter changes per call
                if is_accumulation_condition(value) and not re.search(r"\w\s*\(", value):
                    subst.append((name, f"({value})"))  # and `if update_grad:` is that test
        collections = ctx.collections + tuple(listed_members)
        star = helper.params.star_arg
        if isinstance(star, cst.Param) and not any(a.star for a in call.args):
            # `def zero_all(*optimizers)` called `zero_all(g, d)`: the members are known.
            extra = tuple(self.text(a.value, ctx) for a in positional[len(params):])
            collections = collections + ((star.name.value, extra),)
        # The helper's locals are computed afresh at every call: they vary as the call does.
        local = self.assigned(helper) | varying
        loop_variant, call_variant = ctx.loop_variant, ctx.call_variant
        if ctx.in_loop:
            loop_variant |= local
        else:
            call_variant |= local
        return Context(path=ctx.path, cls=cls, stack=ctx.stack + (id(helper),), subst=tuple(subst),
                       accumulate=ctx.accumulate, loop_variant=loop_variant, call_variant=call_variant,
                       collections=collections, site=ctx.site, via=ctx.via, params=param_names(helper),
                       scope=tuple(handed), func=helper)

    def expand(self, helper: cst.FunctionDef, inner: Context) -> list[Node]:
        if not self.relevant(helper) or self.generator(helper) or not isinstance(helper.body, cst.IndentedBlock):
            return []
        if _without_grad(helper):
            return []  # `@torch.no_grad()`: no backward can run in it (evaluation helpers)
        return [Inline(self.block(helper.body.body, inner))]

    def class_of(self, method: cst.FunctionDef) -> str | None:
        return next((c for (c, _), f in self.facts.methods.items() if f is method), None)


_CONDITION_NODES = (cst.Comparison, cst.BinaryOperation, cst.BooleanOperation, cst.UnaryOperation)
_APPENDED = re.compile(r"([A-Za-z_][\w.]*)\s*\.\s*(?:append|extend)\s*\(")
_EMPTY_TEST = re.compile(r"len\((.+)\)(==0|<=0|<1|>0|>=1|!=0)")


def _emptiness(cond: str, filled: frozenset[str]) -> bool | None:
    """The truth of a test of whether a collection that a loop filled is empty
    (`len(outputs) <= 0` -> False, `outputs` -> True), else None."""
    if cond in filled:
        return True
    match = _EMPTY_TEST.fullmatch(cond)
    if match is None or match.group(1) not in filled:
        return None
    return match.group(2) in (">0", ">=1", "!=0")


# Values that clear a gradient when assigned to it (`p.grad = None`, zeros).
_CLEARED_VALUE = re.compile(r"None|0(?:\.0*)?|(?:[\w.]+\.)?(?:zeros_like|zeros|new_zeros)\(.*\)")
# Comments and docstrings (roughly: a word search must not read them).
_WITHOUT_COMMENTS = re.compile(r'#[^\n]*|"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'')
# An optimizer class of another library whose name says it evaluates the closure several
# times per step (a line search, a quasi-Newton method).
_SEARCHES = re.compile(r"BFGS|LineSearch|Newton|Wolfe|Armijo|Backtrack|ConjugateGradient|^CG$", re.I)


def _calls_closure_once(step: cst.FunctionDef, code: str) -> bool:
    """A custom optimizer's `step(self, closure)`: does it reset the gradients itself, or
    call its closure once, outside any loop?"""
    if "zero_grad(" in code:
        return True
    params = [p.name.value for p in step.params.params][1:]
    if not params:
        return True  # no closure parameter: the closure is never called
    name = "closure" if "closure" in params else params[0]
    calls = list(re.finditer(r"(?<![\w.])" + re.escape(name) + r"\s*\(", code))
    if len(calls) > 1:
        return False
    if not calls:
        return True
    # Called once in the text: inside a loop of the method, it runs several times.
    before = code[: calls[0].start()]
    line = before.rsplit("\n", 1)[-1]
    indent = len(line) - len(line.lstrip())
    for previous in reversed(before.split("\n")[:-1]):
        stripped = previous.lstrip()
        depth = len(previous) - len(stripped)
        if stripped and depth < indent:
            if re.match(r"(?:async\s+)?(?:for|while)\b", stripped):
                return False
            if re.match(r"(?:async\s+)?def\b", stripped):
                return True
            indent = depth
    return True


def param_names(func: cst.FunctionDef) -> frozenset[str]:
    """Every name a function's parameters bind (`*args` and `**kwargs` included)."""
    params = func.params
    found = [p.name.value for p in (*params.posonly_params, *params.params, *params.kwonly_params)]
    for star in (params.star_arg, params.star_kwarg):
        if isinstance(star, cst.Param):
            found.append(star.name.value)
    return frozenset(found)


_USED = re.compile(r"(?<![\w.\]])([A-Za-z_][\w.]*)\.(?:step|zero_grad)\(")


def _statements(suite) -> tuple:
    """A block's statements (an indented block's, or a one-line suite as one statement)."""
    return tuple(suite.body) if isinstance(suite, cst.IndentedBlock) else (suite,)


def _closed_choice(stmt: cst.If) -> bool:
    """An `if`/`elif` chain without `else` whose tests (two or more) compare one expression
    with constants (`kind == "hinge"`, `kind in ("a", "b")`): a choice among the values an
    option allows, of which one is always taken."""
    subject, tests = None, 0
    node: object = stmt
    while isinstance(node, cst.If):
        test = node.test
        if not isinstance(test, cst.Comparison) or len(test.comparisons) != 1:
            return False
        target = test.comparisons[0]
        constant = (cst.SimpleString, cst.ConcatenatedString, cst.Integer, cst.Float)
        if isinstance(target.operator, cst.Equal):
            if not isinstance(target.comparator, constant):
                return False
        elif isinstance(target.operator, cst.In) and isinstance(target.comparator, (cst.Tuple, cst.List, cst.Set)):
            if not all(isinstance(e.value, constant) for e in target.comparator.elements):
                return False
        else:
            return False
        left = plain_code(test.left)
        if left is None or (subject is not None and left != subject):
            return False
        subject, tests, node = left, tests + 1, node.orelse
    return node is None and tests >= 2


def _loop_variable(target: cst.BaseExpression, iter_text: str) -> tuple[str | None, str]:
    """The variable a loop binds each member to, and the collection (`opt`, `optimizers` of
    `for opt in optimizers.values()`; `v`, `self.optimizers` of `for k, v in
    self.optimizers.items()`, `for i, v in enumerate(self.optimizers)`, `for k, v in
    zip(names, self.optimizers)`, `for k, v in named_optimizers` or `self.optimizer_iter()`)."""
    if isinstance(target, cst.Name):
        return target.value, re.sub(r"\.values\(\)$", "", iter_text)
    if isinstance(target, cst.Tuple) and len(target.elements) == 2 and isinstance(target.elements[1].value, cst.Name):
        pair = re.fullmatch(r"(.+)\.items\(\)|enumerate\(([^,()]+)\)|zip\([\w.]+,([\w.]+)\)|([\w.]+(?:\(\))?)", iter_text)
        if pair:
            # (`for name, opt in named_opts:` over (name, optimizer) pairs, `zip(names, opts)`)
            return target.elements[1].value.value, next(g for g in pair.groups() if g)
    return None, ""


def _only_continue(suite: cst.BaseSuite) -> bool:
    """Is the suite just `continue`?"""
    lines = _statements(suite)
    return (len(lines) == 1 and isinstance(lines[0], (cst.SimpleStatementLine, cst.SimpleStatementSuite))
            and len(lines[0].body) == 1 and isinstance(lines[0].body[0], cst.Continue))


def _without_grad(func: cst.FunctionDef) -> bool:
    """Decorated with `torch.no_grad()` / `torch.inference_mode()`."""
    for decorator in func.decorators:
        node = decorator.decorator
        node = node.func if isinstance(node, cst.Call) else node
        name = node.attr.value if isinstance(node, cst.Attribute) else node.value if isinstance(node, cst.Name) else ""
        if name in ("no_grad", "inference_mode"):
            return True
    return False


def _outer_parens_removed(text: str) -> str:
    """`((i + 1) % k == 0)` -> `(i + 1) % k == 0`; `(a) and (b)` stays as it is."""
    while text.startswith("(") and text.endswith(")"):
        depth = 0
        for index, char in enumerate(text):
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth == 0 and index < len(text) - 1:
                return text
        text = text[1:-1]
    return text


def _caller_text(raw: str, subst: tuple[tuple[str, str], ...]) -> str:
    """A helper's expression as the caller writes it (via its parameter renames), or ""."""
    for old, new in subst:
        if raw == old or raw.startswith((old + ".", old + "[")):
            return new + raw[len(old):]
    return ""


def _clears(call: cst.Call) -> bool:
    """`p.grad.zero_()` or `p.grad.fill_(0)`; `fill_(0.01)` in a test sets, it does not clear."""
    if callee_name(call) == "zero_":
        return True
    value = call.args[0].value if call.args else None
    return isinstance(value, (cst.Integer, cst.Float)) and float(value.value.replace("_", "")) == 0.0


def _unless_eventless(loop: Loop) -> list[Node]:
    """A loop without gradient events only adds paths that skip or end the iteration;
    dropping it keeps the analysis small and never invents a finding."""
    return [loop] if any(isinstance(n, Ev) for n in walk(loop)) else []


class _YieldFinder(cst.CSTVisitor):
    found = False

    def visit_Yield(self, node: cst.Yield) -> None:
        self.found = True

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return node is self.root

    def __init__(self, root: cst.FunctionDef) -> None:
        self.root = root


def _is_generator(func: cst.FunctionDef) -> bool:
    """Calling a generator function runs none of its body."""
    finder = _YieldFinder(func)
    walk_cst(func, finder)
    return finder.found


# ----- regions -------------------------------------------------------------------
# The fields through which statements nest: a `def` is always a statement, so walking
# these (and never expressions) finds every function at a fraction of a full visit.
_NESTING = ("body", "handlers", "orelse", "finalbody", "cases")


def _function_defs(module: cst.Module) -> list[tuple[cst.FunctionDef, str | None]]:
    """Every function with the class it belongs to (``None`` for plain functions), in
    source order (the order a CSTVisitor would see them)."""
    found: list[tuple[cst.FunctionDef, str | None]] = []

    def visit(node: cst.CSTNode, cls: str | None) -> None:
        if isinstance(node, cst.FunctionDef):
            found.append((node, cls))
        elif isinstance(node, cst.ClassDef):
            cls = node.name.value
        for field_name in _NESTING:
            value = getattr(node, field_name, None)
            for child in value if isinstance(value, (list, tuple)) else (value,):
                if isinstance(child, cst.CSTNode) and not isinstance(child, cst.BaseSmallStatement):
                    visit(child, cls)

    for stmt in module.body:
        visit(stmt, None)
    return found


def extract_regions(parsed: ParsedModule, facts: ModuleFacts, resolver: "Resolver | None" = None) -> list[Region]:
    """The module's top level plus every function nobody in the module calls.

    A function called from elsewhere in the module is analysed where it is called
    (inlined); the others run "once per batch" as far as we can tell, so their body is
    wrapped in a virtual loop (the usual ``train_step(batch)`` shape).
    """
    extractor = Extractor(parsed, facts, resolver=resolver)
    regions: list[Region] = []
    top = extractor.block(parsed.module.body, Context())
    regions.append(_region(extractor, "<module>", top))
    bodies = []
    returned = facts.returned
    for func, cls in _function_defs(parsed.module):
        if isinstance(func.body, cst.IndentedBlock):
            # If the function turns out to run once per batch, its parameters and locals
            # change from call to call (`batch_idx`); `self` and `cls` never do.
            # A parameter with a default (`dry_run: bool = False`, `k=8`) is a setting, not the batch.
            params = frozenset(
                p.name.value for p in func.params.params if p.name.value not in ("self", "cls") and p.default is None
            )
            ctx = Context(cls=cls, stack=(id(func),), call_variant=params | extractor.assigned(func),
                          params=param_names(func), func=func)
            bodies.append((func, cls, extractor.block(func.body.body, ctx)))
    closures = {id(e.closure_node) for e in extractor.events.values() if e.closure_node is not None}
    kept_by_class: dict[str, frozenset[str]] = {}  # what each class's constructor keeps of its parameters
    for func, cls, body in bodies:
        # A function handed to another call (an engine's process function) runs once per
        # batch even when the module also calls it directly once.
        handed = func.name.value in facts.passed and id(func) not in closures
        if (id(func) in extractor.inlined and not handed) or not body.items:
            continue
        # A function a factory returns is called where we cannot see: its caller may zero
        # (open_clip's train_step). One that zeroes itself (ignite's process function) is a
        # per-batch body either way.
        caller_may_zero = func.name.value in returned and not any(
            isinstance(n, Ev) and n.event.kind == "zero" for n in walk(body))
        if cls is not None and cls not in kept_by_class:
            kept_by_class[cls] = _handed_in(facts.methods.get((cls, "__init__")))
        kept = kept_by_class.get(cls, frozenset()) if cls is not None else frozenset()
        if not _runs_per_batch(func, body, resolver, kept, cls) or caller_may_zero:
            regions.append(_region(extractor, func.name.value, body))
            continue
        loop_id = extractor.new_id()
        # As in Extractor.loop: the line of a body without events is never shown.
        line = parsed.start(func)[0] if any(isinstance(n, Ev) for n in walk(body)) else 0
        virtual = Loop(loop_id, _prefix_paths(body, loop_id), EMPTY, line, virtual=True)
        regions.append(_region(extractor, func.name.value, Seq((virtual,))))
    return regions


STEP_FUNCTION_RE = re.compile(r"train|step|fit|update|epoch|iter|batch|optimi[sz]e|closure|learn", re.I)


def _stored_parameters(init: cst.FunctionDef) -> list[tuple[tuple[str, ...], str]]:
    """The plain assignments of a constructor's parameters in its body (`self.d_optimizer
    = d_optimizer`): the targets (dotted names) and the parameter, in order."""
    if not isinstance(init.body, cst.IndentedBlock):
        return []
    params = {p.name.value for p in init.params.params[1:]}
    found = []
    for stmt in init.body.body:
        for small in stmt.body if isinstance(stmt, cst.SimpleStatementLine) else ():
            if isinstance(small, cst.Assign) and isinstance(small.value, cst.Name) and small.value.value in params:
                found.append((tuple(filter(None, (plain_code(t.target) for t in small.targets))), small.value.value))
    return found


def _handed_in(init: "cst.FunctionDef | None") -> frozenset[str]:
    """What a constructor keeps of its parameters: the parameters, and the attributes it
    sets to them (`self.d_optimizer = d_optimizer`)."""
    if init is None or not isinstance(init.body, cst.IndentedBlock):
        return frozenset()
    found = {p.name.value for p in init.params.params[1:]}
    for targets, _ in _stored_parameters(init):
        found.update(targets)
    return frozenset(found)


def _runs_per_batch(func: cst.FunctionDef, body: Seq, resolver: "Resolver | None" = None,
                    handed: frozenset[str] = frozenset(), cls: str | None = None) -> bool:
    """Is this function, never called in its module, a per-batch body (run again and again)?

    Tests (``test_*``) and dunder methods run once. A function handed its optimizer as a
    parameter is a helper whose caller may reset the gradients (timm's loss scaler), unless
    its name says it is a training step and no module of the project that zgcheck analyses
    calls it (there the caller's loop is checked with it inlined, zero included)."""
    name = func.name.value
    if name.startswith(("test", "_test")) or (name.startswith("__") and name.endswith("__")):
        return False
    params = {p.name.value for p in func.params.params}
    keys = {n.event.opt for n in walk(body) if isinstance(n, Ev) and n.event.kind == "step" and n.event.opt}
    stepped = {k.split(".")[0].split("[")[0] for k in keys}
    # An optimizer its class's constructor was handed (`Trainer(D, d_optimizer)`) is the
    # caller's, like a parameter: the caller may reset it.
    owned_by_caller = bool(keys & handed) and cls is not None
    if stepped & params or owned_by_caller:
        if not STEP_FUNCTION_RE.search(name):
            return False
        if resolver is not None and resolver.depth == 0 and resolver.runs_elsewhere(name, cls if owned_by_caller else None):
            return False
    return True


def _prefix_paths(body: Seq, loop_id: int) -> Seq:
    def fix(node: Node) -> Node:
        if isinstance(node, Ev):
            return Ev(node.event, (("loop", loop_id),) + node.path)
        if isinstance(node, Seq):
            return Seq(tuple(fix(i) for i in node.items))
        if isinstance(node, If):
            return If(node.cond, fix(node.then), fix(node.orelse), node.accumulation, node.mode)
        if isinstance(node, Loop):
            return Loop(node.id, fix(node.body), fix(node.orelse), node.line, node.infinite, node.virtual, node.via)
        if isinstance(node, Try):
            return Try(fix(node.body), tuple(fix(h) for h in node.handlers), fix(node.orelse), fix(node.final) if node.final else None)
        if isinstance(node, Inline):
            return Inline(fix(node.body))
        return node

    return fix(body)


def _region(extractor: Extractor, name: str, body: Seq) -> Region:
    occurrences = tuple(n for n in walk(body) if isinstance(n, Ev))
    events = {o.event.id: o.event for o in occurrences}
    for occ in occurrences:
        if occ.event.closure is not None:
            for n in walk(occ.event.closure):
                if isinstance(n, Ev):
                    events[n.event.id] = n.event
    loops = {n.id: n for n in walk(body) if isinstance(n, Loop)}
    return Region(name, body, events, occurrences, loops, extractor.modes, extractor.shown)
