"""Extraction: a module's loops, step functions and their gradient events.

Each region is turned into the control-flow tree of :mod:`zgcheck.events`. Helpers
defined in the same module are inlined at their call sites (with their parameters
renamed to the caller's arguments), closures passed to ``step()`` are inlined before
the step, and loops over parameters that clear or update ``p.grad`` count as one event.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import libcst as cst

from zgcheck import freezing
from zgcheck.events import EMPTY, Ev, Event, If, Inline, Jump, Loop, Node, Region, Seq, Try, walk
from zgcheck.parsing import ParsedModule
from zgcheck.recognize import ZERO_METHODS, ModuleFacts, callee_name, receiver, squash

INPLACE_UPDATES = frozenset({"add_", "sub_", "copy_", "addcdiv_", "addcmul_", "mul_", "lerp_"})
GRAD_CLEARS = frozenset({"zero_", "fill_"})
MAX_INLINE_DEPTH = 6
SYNC_CONDITION = "accelerator.sync_gradients"
EVENT_MARKERS = ("backward", "step", "zero_grad", "clear_grad", ".grad", "optimizer", "requires_grad")
CALLED = re.compile(r"([A-Za-z_]\w*)\s*\(")
ACCUM_RE = re.compile(r"%|accum|sync_grad", re.I)
PARAM_LOOP_RE = re.compile(r"parameters\(|\bparameters\b|param_groups|\[['\"]params['\"]\]|\bparams?\b|weights?\b")


def is_accumulation_condition(cond: str) -> bool:
    return bool(ACCUM_RE.search(cond))


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
    _ids: int = 0
    _relevant: dict[int, bool] = field(default_factory=dict)
    _generators: dict[int, bool] = field(default_factory=dict)

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
        text = self.parsed.code(func)
        found = any(marker in text for marker in EVENT_MARKERS)
        if not found:
            for name in set(CALLED.findall(text)):
                helpers = [self.facts.functions.get(name)] + [f for (c, n), f in self.facts.methods.items() if n == name]
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
        self._ids += 1
        return self._ids

    def event(self, kind: str, node: cst.CSTNode, ctx: Context, **kw) -> Ev:
        (line, col), (end_line, end_col) = self.parsed.start(node), self.parsed.end(node)
        text = " ".join(self.parsed.code(node).split())
        ev = Event(self.new_id(), kind, text, line, col + 1, end_line, end_col + 1, node=node, subst=ctx.subst, **kw)
        self.events[ev.id] = ev
        return Ev(ev, ctx.path)

    # ----- statements ----------------------------------------------------------
    def block(self, body, ctx: Context) -> Seq:
        items: list[Node] = []
        for stmt in body:
            if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
                if isinstance(stmt, cst.FunctionDef):
                    ctx = replace(ctx, scope=ctx.scope + ((stmt.name.value, stmt),))
                continue
            items.extend(self.statement(stmt, ctx))
        return Seq(tuple(items))

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
            items = self.expr_events(small.value, ctx) if small.value is not None else []
            return items + self.assignment_events(small, ctx)
        if isinstance(small, cst.Assert):
            return self.expr_events(small.test, ctx)
        return []

    def if_node(self, stmt: cst.If, ctx: Context) -> Node:
        cond = self.text(stmt.test, ctx)
        negated = False
        while cond.startswith("not") and isinstance(stmt.test, cst.UnaryOperation) and not negated:
            cond, negated = self.text(stmt.test.expression, ctx), True
        cond = cond.strip("()") if cond.startswith("(") and cond.endswith(")") else cond
        then_ctx = replace(ctx, path=ctx.path + (("if", cond),))
        then = self.suite(stmt.body, then_ctx)
        orelse = EMPTY
        if isinstance(stmt.orelse, cst.If):
            nested = self.if_node(stmt.orelse, then_ctx)
            orelse = Seq((nested,)) if nested.then.items or nested.orelse.items else EMPTY
        elif isinstance(stmt.orelse, cst.Else):
            orelse = self.suite(stmt.orelse.body, then_ctx)
        if negated:
            then, orelse = orelse, then
        return If(cond, then, orelse, is_accumulation_condition(cond))

    def loop(self, stmt: cst.For | cst.While, ctx: Context, infinite: bool = False) -> Loop:
        loop_id = self.new_id()
        inner = replace(ctx, path=ctx.path + (("loop", loop_id),))
        if isinstance(stmt, cst.For):
            inner = self.bind_param_loop(stmt, inner)
        body = self.suite(stmt.body, inner)
        orelse = self.suite(stmt.orelse.body, ctx) if stmt.orelse else EMPTY
        # An eventless loop is dropped by the caller; not asking for its line spares
        # resolving positions in code that has nothing to do with gradients.
        eventful = any(isinstance(n, Ev) for part in (body, orelse) for n in walk(part))
        return Loop(loop_id, body, orelse, self.parsed.start(stmt)[0] if eventful else 0, infinite=infinite)

    def bind_param_loop(self, stmt: cst.For, ctx: Context) -> Context:
        target = stmt.target
        if isinstance(target, cst.Tuple) and target.elements:
            target = target.elements[-1].value
        if not isinstance(target, cst.Name):
            return ctx
        return replace(ctx, param_vars=ctx.param_vars + ((target.value, self.text(stmt.iter, ctx)),))

    def for_node(self, stmt: cst.For, ctx: Context) -> list[Node]:
        iter_text = self.text(stmt.iter, ctx)
        body_code = self.parsed.code(stmt.body)
        if PARAM_LOOP_RE.search(iter_text) and (".grad" in body_code or "requires_grad" in body_code) and not stmt.orelse:
            # `for p in model.parameters(): p.grad = None` clears (or updates) all of them:
            # one event, not a loop that might run zero times.
            return list(self.suite(stmt.body, self.bind_param_loop(stmt, ctx)).items)
        if isinstance(stmt.target, cst.Name) and self.facts.is_optimizer(stmt.target.value) and not stmt.orelse:
            # `for opt in optimizers: opt.step()` steps each optimizer once, not repeatedly.
            return list(self.suite(stmt.body, ctx).items)
        return _unless_eventless(self.loop(stmt, ctx))

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
        if expr is None:
            return []
        code = self.parsed.code(expr)
        if "(" not in code:
            return []
        collector = _CallCollector()
        expr.visit(collector)
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
            helper = ctx.local_def(name) or facts.functions.get(name)
            if helper:
                return self.inline(helper, call, ctx, skip_self=False)
            return [self.event("zero", call, ctx, unknown=True)] if "zero_grad" in name else []
        key = self.text(recv, ctx)
        if key == "self" and ctx.cls and (ctx.cls, name) in facts.methods:
            return self.inline(facts.methods[(ctx.cls, name)], call, ctx, skip_self=True)
        if name in ZERO_METHODS:
            if facts.is_optimizer(key):
                raw = squash(self.parsed.code(recv))
                return [self.synced(ctx, key, lambda c: self.event("zero", call, c, opt=facts.canon(key), target=raw))]
            return [self.event("zero", call, ctx, models=(key,))]
        if "zero_grad" in name and name != "zero_grad":  # self._zero_grad(), model.zero_grads()
            return [self.event("zero", call, ctx, unknown=True)]
        if name in ("backward", "manual_backward"):
            if key.startswith("super(") or facts.is_engine(key) or "dist_autograd" in key:
                return []
            return [self.event("backward", call, ctx)]
        if name == "step":
            return self.step_events(call, key, ctx)
        if name == "optimizer_step" and call.args:
            target = self.text(call.args[0].value, ctx)
            if key == "xm" or facts.is_optimizer(target):
                raw = squash(self.parsed.code(call.args[0].value))
                return [self.event("step", call, ctx, opt=facts.canon(target), target=raw)]
            return []
        if name in GRAD_CLEARS and re.search(r"\.grad(\.data)?$", key) and _clears(call):
            return self.grad_clear(call, key.rsplit(".grad", 1)[0], ctx)
        if name in INPLACE_UPDATES:
            base = key[: -len(".data")] if key.endswith(".data") else key
            if re.search(rf"(?<![\w.]){re.escape(base)}(\.data)?\.grad\b", self.text(call, ctx)[len(key):]):
                return [self.event("manual", call, ctx, grad_base=base)]
        return []

    def step_events(self, call: cst.Call, key: str, ctx: Context) -> list[Node]:
        facts = self.facts
        if call.args and facts.is_scaler(key):
            opt = facts.canon(self.text(call.args[0].value, ctx))
            return [self.event("step", call, ctx, opt=opt, target=squash(self.parsed.code(call.args[0].value)))]
        if facts.is_engine(key) or not facts.is_optimizer(key):
            return []
        opt = facts.canon(key)
        closure_arg = next((a.value for a in call.args if a.keyword is None or a.keyword.value == "closure"), None)
        closure, closure_name, closure_node = None, "", None
        if isinstance(closure_arg, cst.Name):
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

        def step(c: Context) -> Ev:
            return self.event("step", call, c, opt=opt, closure=closure, closure_name=closure_name,
                              closure_node=closure_node, target=raw)

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
        return If(SYNC_CONDITION, Seq((make(inner),)), EMPTY, True)

    def grad_clear(self, node: cst.CSTNode, base: str, ctx: Context) -> list[Node]:
        """`p.grad = None` / `p.grad.zero_()`: all parameters when p walks a parameter source."""
        source = dict(ctx.param_vars).get(base)
        if source is None:
            return [self.event("zero", node, ctx, grad_base=base)]
        groups = re.match(r"(.+)\.param_groups$", source)
        if groups is None:
            outer = re.match(r"(\w+)\[['\"]params['\"]\]$", source)
            outer_source = dict(ctx.param_vars).get(outer.group(1)) if outer else None
            groups = re.match(r"(.+)\.param_groups$", outer_source or "")
        if groups:
            return [self.event("zero", node, ctx, grad_base=base, opt=self.facts.canon(groups.group(1)))]
        owners = self.facts.param_owners(source)
        if owners:
            return [self.event("zero", node, ctx, grad_base=base, models=tuple(sorted(owners)))]
        return [self.event("zero", node, ctx, grad_base=base, unknown=True)]

    def assignment_events(self, small, ctx: Context) -> list[Node]:
        targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
        items: list[Node] = []
        if isinstance(small.value, cst.Call):
            # A new optimizer bound here: its parameters are often new too. Treat it as a
            # possible reset rather than report gradients an old instance left behind.
            rebound = [k for k in self.bound_names(targets, ctx) if self.facts.is_optimizer(k)]
            # Lightning's self.optimizers() hands back the same optimizers every time.
            if rebound and callee_name(small.value) != "optimizers":
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
                items.extend(self.grad_clear(small, grad.group(1), ctx))
                continue
            base = key[: -len(".data")] if key.endswith(".data") else key
            in_place = isinstance(small, cst.AugAssign) or key.endswith(".data")
            if in_place and small.value is not None and not grad:
                pattern = rf"(?<![\w.]){re.escape(base)}(\.data)?\.grad\b"
                if re.search(pattern, self.text(small.value, ctx)):
                    items.append(self.event("manual", small, ctx, grad_base=base))
        return items

    def bound_names(self, targets, ctx: Context) -> list[str]:
        names: list[str] = []
        for target in targets:
            elements = target.elements if isinstance(target, (cst.Tuple, cst.List)) else [target]
            names.extend(self.text(e.value if isinstance(e, cst.BaseElement) else e, ctx) for e in elements)
        return names

    # ----- helpers inlined at their call ----------------------------------------
    def inline(self, helper: cst.FunctionDef, call: cst.Call, ctx: Context, skip_self: bool) -> list[Node]:
        if id(helper) in ctx.stack or len(ctx.stack) >= MAX_INLINE_DEPTH:
            return []
        self.inlined.add(id(helper))
        if not self.relevant(helper) or self.generator(helper):
            return []
        params = [p.name.value for p in helper.params.params]
        if skip_self and params:
            params = params[1:]
        subst: list[tuple[str, str]] = []
        for index, arg in enumerate(call.args):
            if arg.star:
                break
            name = arg.keyword.value if arg.keyword else (params[index] if index < len(params) else None)
            value = self.text(arg.value, ctx)
            # Identity pairs too (`train_step(G, D)` into `def train_step(G, D)`): they tell
            # reach that G is the caller's G, not an unknown parameter.
            if name and re.fullmatch(r"[\w.\[\]'\"()]+", value):
                subst.append((name, value))
        inner = Context(path=ctx.path, cls=ctx.cls, stack=ctx.stack + (id(helper),), subst=tuple(subst), accumulate=ctx.accumulate)
        return [Inline(self.block(helper.body.body, inner))] if isinstance(helper.body, cst.IndentedBlock) else []


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
    func.visit(finder)
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


def extract_regions(parsed: ParsedModule, facts: ModuleFacts) -> list[Region]:
    """The module's top level plus every function nobody in the module calls.

    A function called from elsewhere in the module is analysed where it is called
    (inlined); the others run "once per batch" as far as we can tell, so their body is
    wrapped in a virtual loop (the usual ``train_step(batch)`` shape).
    """
    extractor = Extractor(parsed, facts)
    regions: list[Region] = []
    top = extractor.block(parsed.module.body, Context())
    regions.append(_region(extractor, "<module>", top))
    bodies = []
    returned = facts.returned
    for func, cls in _function_defs(parsed.module):
        if isinstance(func.body, cst.IndentedBlock):
            bodies.append((func, extractor.block(func.body.body, Context(cls=cls, stack=(id(func),)))))
    closures = {id(e.closure_node) for e in extractor.events.values() if e.closure_node is not None}
    for func, body in bodies:
        # A function handed to another call (an engine's process function) runs once per
        # batch even when the module also calls it directly once.
        handed = func.name.value in facts.passed and id(func) not in closures
        if (id(func) in extractor.inlined and not handed) or not body.items:
            continue
        if not _runs_per_batch(func, body) or func.name.value in returned:
            regions.append(_region(extractor, func.name.value, body))
            continue
        loop_id = extractor.new_id()
        # As in Extractor.loop: the line of a body without events is never shown.
        line = parsed.start(func)[0] if any(isinstance(n, Ev) for n in walk(body)) else 0
        virtual = Loop(loop_id, _prefix_paths(body, loop_id), EMPTY, line, virtual=True)
        regions.append(_region(extractor, func.name.value, Seq((virtual,))))
    return regions


STEP_FUNCTION_RE = re.compile(r"train|step|fit|update|epoch|iter|batch|optimi[sz]e|closure|learn", re.I)


def _runs_per_batch(func: cst.FunctionDef, body: Seq) -> bool:
    """Is this function, never called in its module, a per-batch body (run again and again)?

    Tests (``test_*``) and dunder methods run once. A function handed its optimizer as a
    parameter is a helper whose caller may reset the gradients (timm's loss scaler), unless
    its name says it is a training step."""
    name = func.name.value
    if name.startswith(("test", "_test")) or (name.startswith("__") and name.endswith("__")):
        return False
    params = {p.name.value for p in func.params.params}
    stepped = {n.event.opt.split(".")[0].split("[")[0] for n in walk(body) if isinstance(n, Ev) and n.event.kind == "step" and n.event.opt}
    if stepped & params and not STEP_FUNCTION_RE.search(name):
        return False
    return True


def _prefix_paths(body: Seq, loop_id: int) -> Seq:
    def fix(node: Node) -> Node:
        if isinstance(node, Ev):
            return Ev(node.event, (("loop", loop_id),) + node.path)
        if isinstance(node, Seq):
            return Seq(tuple(fix(i) for i in node.items))
        if isinstance(node, If):
            return If(node.cond, fix(node.then), fix(node.orelse), node.accumulation)
        if isinstance(node, Loop):
            return Loop(node.id, fix(node.body), fix(node.orelse), node.line, node.infinite, node.virtual)
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
    return Region(name, body, events, occurrences, loops)
