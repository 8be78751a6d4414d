"""Reach: which optimizers a backward pass writes gradients into (GUIDE section 1).

The loss of a ``backward()`` is followed back through the names it is computed from
(nearest assignment first, through helpers and methods of the same module) to the module
calls that built it: ``D(fake)``, ``self.discriminator(x)``, ``vae.encode(x)``. Modules are
mapped to optimizers through ownership (``Adam(D.parameters())``, Lightning's
``configure_optimizers``). ``x.detach()``, ``.item()`` and values computed under
``torch.no_grad()`` carry no gradient into the modules that made them, but the module that
is called on a detached input is still reached.

The answer is *definite*: a module is listed only when the loss surely runs through it.
Anything the analysis cannot see (a parameter of an unresolved helper, a module handed to
an unknown call) makes the answer incomplete, never larger: ZG007 only reports a leak
through modules that are listed, so undecidable code stays silent. Frozen modules
(``requires_grad_(False)``, Lightning's ``toggle_optimizer``) are events of the control
flow and are taken into account by :mod:`zgcheck.leaks`, not here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import libcst as cst

from zgcheck.events import Event
from zgcheck.parsing import ParsedModule
from zgcheck.recognize import ModuleFacts, callee_name, squash
from zgcheck.scopes import Assignment, Scope, ScopeIndex, dotted, reaching, target_keys

# Calls whose result carries no gradient back into what produced their receiver.
_CRITERION = re.compile(r"^(?:cri(?:_\w+)?|criterion\w*|\w*_?loss(?:_fn)?|\w*_criterion|bce|mse|l1|ce)$", re.I)
STOP_METHODS = frozenset({"detach", "detach_", "item", "numpy", "tolist", "size", "dim", "numel", "argmax", "argmin"})
# Calls that hand back the module they are given, unwrapped (Accelerate, diffusers' helpers).
UNWRAPS = frozenset({"unwrap_model", "_unwrap_model"})
# Methods of a module that do not run its forward pass.
NOT_FORWARD = frozenset({
    "parameters", "named_parameters", "buffers", "named_buffers", "state_dict", "load_state_dict", "eval",
    "train", "to", "cuda", "cpu", "float", "half", "double", "bfloat16", "zero_grad", "apply", "modules",
    "named_modules", "children", "named_children", "requires_grad_", "register_forward_hook", "register_buffer",
    "register_parameter", "add_module", "get_submodule", "type", "share_memory", "extra_repr",
})
# A backward called on an object that takes the loss as its argument.
LOSS_ARGUMENT_RECEIVERS = frozenset({"accelerator", "fabric", "autograd", "self", "trainer", "strategy", "deepspeed"})
MAX_DEPTH = 12


@dataclass(frozen=True)
class Reach:
    """Modules a loss surely runs through (keys as written, helpers' names renamed)."""

    modules: frozenset[str]
    complete: bool  # nothing else can be reached


@dataclass
class _Frame:
    """Where names are looked up: a scope, renames of its parameters, and (for a helper the
    analysis followed into) the caller's argument expressions."""

    scope: Scope
    subst: tuple[tuple[str, str], ...] = ()
    bindings: dict[str, tuple[cst.BaseExpression, "_Frame", int, tuple]] = field(default_factory=dict)
    depth: int = 0


class _Acc:
    def __init__(self) -> None:
        self.modules: set[str] = set()
        self.complete = True
        # Assignments already followed for this loss: following one again adds nothing
        # (the answer is a union), and skipping it keeps long scripts linear.
        self.visited: set = set()


class ReachFinder:
    """Answers "which modules / optimizers does this backward reach?" for one module."""

    def __init__(self, parsed: ParsedModule, facts: ModuleFacts, criteria_hold_nothing: bool = False) -> None:
        self.parsed = parsed
        self.facts = facts
        # ZG004 asks whether a loss can reach a network at all: there a criterion object
        # (`self.cri_gan(pred, target)`, `criterion(...)`) is taken to hold no parameters of
        # its own; only what is handed to it is followed.
        self.criteria_hold_nothing = criteria_hold_nothing
        self._index: ScopeIndex | None = None
        self._owners: dict[str, frozenset[str] | None] | None = None
        self._cache: dict[int, Reach] = {}
        self._known: set[str] | None = None

    # ----- ownership ----------------------------------------------------------------
    def _lightning(self) -> dict[str, frozenset[str] | None]:
        if self._owners is None:
            self._owners = lightning_owners(self.index(), self.facts, lambda n: squash(self.parsed.code(n)))
        return self._owners

    def owners(self, key: str) -> frozenset[str] | None:
        """Modules whose parameters optimizer ``key`` updates (None: cannot be seen)."""
        extra = self._lightning()
        found = self.facts.owners_of(key)
        if found is None:
            found = extra.get(self.facts.canon(key))
        if found is None and self.facts.canon(key) not in extra:
            found = extra[self.facts.canon(key)] = self._built_from(key)
            self._known = None  # new modules to recognise in losses
            self._cache.clear()
        return found

    def _built_from(self, key: str) -> frozenset[str] | None:
        """``Adam(params_d)`` with ``params_d = list(D_A.parameters()) + list(D_B.parameters())``
        (a sum the fact pass does not follow): the models named in the arguments' values."""
        index = self.index()
        canon = self.facts.canon(key)
        owners: set[str] = set()
        for scope in [index.module, *index.by_node.values()]:
            for name, records in scope.assigns.items():
                if self.facts.canon(name) != canon:
                    continue
                for record in records:
                    value = record.value
                    if isinstance(value, cst.Call) and self.facts.is_factory(callee_name(value)):
                        for arg in value.args:
                            owners |= self._parameter_models(arg.value, scope)
        return frozenset(owners) or None

    def _parameter_models(self, expr: cst.BaseExpression, scope: Scope) -> set[str]:
        text = squash(self.parsed.code(expr))
        found = set(self.facts.param_owners(text) or ())
        if not found and isinstance(expr, (cst.Name, cst.Attribute)):
            for record in scope.assigns.get(text, ()):
                if record.value is not None:
                    found |= set(self.facts.param_owners(squash(self.parsed.code(record.value))) or ())
        return found

    def index(self) -> "ScopeIndex":
        if self._index is None:
            self._index = ScopeIndex(self.parsed).run()
        return self._index

    def module_keys(self) -> set[str]:
        if self._known is not None:
            return self._known
        keys: set[str] = set()
        for found in self.facts.owners.values():
            keys |= set(found or ())
        for found in self._lightning().values():
            keys |= set(found or ())
        self._known = keys
        return keys

    def optimizers(self, event: Event, keys) -> frozenset[str]:
        """The optimizers among ``keys`` whose parameters the backward surely writes."""
        owners_of = {key: self.owners(key) for key in keys}  # before the reach: it names the modules
        reach = self.of(event)
        found = set()
        for key in keys:
            owners = owners_of[key]
            if owners and any(related(m, o) for m in reach.modules for o in owners):
                found.add(key)
        return frozenset(found)

    # ----- reach of one backward ------------------------------------------------------
    def of(self, event: Event) -> Reach:
        if event.id not in self._cache:
            self._cache[event.id] = self._compute(event)
        return self._cache[event.id]

    def _compute(self, event: Event) -> Reach:
        index = self.index()
        where = index.calls.get(id(event.node)) or index.locate(event.node)
        call = event.node
        if where is None or not isinstance(call, cst.Call):
            return Reach(frozenset(), False)
        scope, order, path = where
        loss = loss_expression(call, lambda n: squash(self.parsed.code(n)))
        if loss is None:
            return Reach(frozenset(), False)
        acc = _Acc()
        self.expr(loss, _Frame(scope, tuple(event.subst)), order, path, acc, set())
        return Reach(frozenset(acc.modules), acc.complete)

    def text(self, node: cst.CSTNode, frame: _Frame) -> str:
        raw = squash(self.parsed.code(node))
        for old, new in frame.subst:
            if raw == old or raw.startswith((old + ".", old + "[")):
                return new + raw[len(old):]
        return raw

    def module_of(self, key: str, container: bool = True) -> str | None:
        """``key`` when it names a module some optimizer owns, or a part of one; with
        ``container``, also a module that holds one (calling ``self.model`` runs
        ``self.model.head``). ``self`` is never taken for a container: ``self.loss(x)`` is
        no forward pass of the whole object."""
        key = re.sub(r"\.(module|forward|_orig_mod)$", "", key)
        key = re.sub(r"\.module\.", ".", key)
        canon = self.facts.canon(key)
        for candidate in (key, canon):
            for module in self.module_keys():
                if candidate == module or candidate.startswith((module + ".", module + "[")):
                    return candidate
                if container and candidate != "self" and module.startswith((candidate + ".", candidate + "[")):
                    return candidate
        return None

    def expr(self, node, frame: _Frame, order: int, path: tuple, acc: _Acc, seen: set, bound: frozenset = frozenset()) -> None:
        if frame.depth > MAX_DEPTH:
            acc.complete = False
            return
        if isinstance(node, (cst.Name, cst.Attribute)):
            self.name(node, frame, order, path, acc, seen, bound)
        elif isinstance(node, cst.Call):
            self.call(node, frame, order, path, acc, seen, bound)
        elif isinstance(node, cst.Subscript):
            self.expr(node.value, frame, order, path, acc, seen, bound)
        elif isinstance(node, cst.Lambda):
            return
        elif isinstance(node, (cst.GeneratorExp, cst.ListComp, cst.SetComp, cst.DictComp)):
            self.comprehension(node, frame, order, path, acc, seen, bound)
        else:
            for child in _expression_children(node):
                self.expr(child, frame, order, path, acc, seen, bound)

    def comprehension(self, node, frame, order, path, acc, seen, bound) -> None:
        inner = set(bound)
        comp = node.for_in
        while comp is not None:
            self.expr(comp.iter, frame, order, path, acc, seen, frozenset(inner))
            inner |= set(target_keys(comp.target, lambda n: squash(self.parsed.code(n))))
            comp = comp.inner_for_in
        parts = (node.key, node.value) if isinstance(node, cst.DictComp) else (node.elt,)
        for part in parts:
            self.expr(part, frame, order, path, acc, seen, frozenset(inner))

    def name(self, node, frame: _Frame, order: int, path: tuple, acc: _Acc, seen: set, bound: frozenset) -> None:
        if not dotted(node):  # `x[0].foo`, `f(x).bar`: what matters is the value below
            self.expr(node.value, frame, order, path, acc, seen, bound)
            return
        key = squash(self.parsed.code(node))
        if key.split(".")[0] in bound:
            return  # a comprehension variable: its iterable was followed already
        while True:
            if self.resolve(key, frame, order, path, acc, seen):
                return
            if "." not in key:
                break
            key = key.rsplit(".", 1)[0]  # `out.logits` comes from `out`
        root = key.split(".")[0]
        if root in frame.bindings:
            value, caller, c_order, c_path = frame.bindings[root]
            self.expr(value, caller, c_order, c_path, acc, seen)
        elif root in frame.scope.params or root == "self" or root in self.parsed_globals():
            acc.complete = False
        # Otherwise an imported name (torch, F, math): it carries no module's gradient.

    def parsed_globals(self) -> set[str]:
        return set(self._index.module.assigns) if self._index else set()

    def resolve(self, key: str, frame: _Frame, order: int, path: tuple, acc: _Acc, seen: set) -> bool:
        """Follow the assignments of ``key`` that reach this use; False if there are none."""
        scope = frame.scope
        records = scope.assigns.get(key)
        if records:
            for record in reaching(records, order, path):
                self.assignment(record, frame, acc, seen, key)
            return True
        if key.startswith("self.") and scope.cls is not None:
            # An attribute set in another method of the class (``self.fake = self.G(z)``).
            found = False
            for other in self._index.by_node.values():
                if other.cls == scope.cls and other is not scope and key in other.assigns:
                    found = True
                    for record in other.assigns[key]:
                        self.assignment(record, _Frame(other, depth=frame.depth + 1), acc, seen, key)
            return found
        module = self._index.module
        if scope is not module and key in module.assigns and key not in scope.params and key not in frame.bindings:
            for record in module.assigns[key]:
                self.assignment(record, _Frame(module, depth=frame.depth + 1), acc, seen, key)
            return True
        return False

    def assignment(self, record: Assignment, frame: _Frame, acc: _Acc, seen: set, key: str) -> None:
        marker = (id(frame.scope), id(frame.bindings), key, record.order, id(record.value))
        if marker in acc.visited or record.no_grad or record.value is None:
            return
        acc.visited.add(marker)
        self.expr(record.value, frame, record.order, record.path, acc, seen)

    def call(self, node: cst.Call, frame: _Frame, order: int, path: tuple, acc: _Acc, seen: set, bound: frozenset) -> None:
        name = callee_name(node)
        func = node.func
        if isinstance(func, cst.Attribute) and name in STOP_METHODS:
            return
        helper = self.helper(func, frame)
        if helper is not None:
            self.inline(helper, node, frame, order, path, acc, seen)
            return
        inner = self.unwrapped(node, frame)
        if inner is not None:  # `accelerator.unwrap_model(vae)`: vae itself
            module = self.module_of(self.text(inner, frame))
            if module is not None:
                acc.modules.add(module)
                return
        callee = self.text(func, frame)
        module = (self.module_of(callee) if self.nameable(func, frame) else None) or self.bound_module(func, frame)
        called = self.unwrapped(func, frame)  # `accelerator.unwrap_model(vae)(x)`
        if module is None and called is not None:
            module = self.module_of(self.text(called, frame))
        if module is None and isinstance(func, cst.Attribute) and name not in NOT_FORWARD:
            base = self.unwrapped(func.value, frame) or func.value
            receiver = (self.module_of(self.text(base, frame), container=False)
                        if self.nameable(base, frame) else None)
            if receiver is not None:
                module = receiver  # `vae.encode(x)`: a method of a module runs its layers
        if module is not None and not (isinstance(func, cst.Attribute) and name in NOT_FORWARD):
            acc.modules.add(module)
            for arg in node.args:
                self.expr(arg.value, frame, order, path, acc, seen, bound)
            return
        criterion = self.criteria_hold_nothing and bool(_CRITERION.search(name))
        if isinstance(func, cst.Attribute) and not criterion:
            self.expr(func.value, frame, order, path, acc, seen, bound)
        for arg in node.args:
            if dotted(arg.value) and self.module_of(self.text(arg.value, frame)) is not None:
                acc.complete = False  # a module handed to an unknown call may run there
            self.expr(arg.value, frame, order, path, acc, seen, bound)

    def unwrapped(self, node, frame: _Frame):
        """The module of `accelerator.unwrap_model(vae)` / `unwrap_model(vae)` (the wrapper
        Accelerate, DDP or torch.compile put around it runs the same layers), or None."""
        if (isinstance(node, cst.Call) and callee_name(node) in UNWRAPS and node.args
                and node.args[0].keyword is None and self.nameable(node.args[0].value, frame)):
            return node.args[0].value
        return None

    def nameable(self, node, frame: _Frame) -> bool:
        """A dotted name that can be taken for the module of that name: not a parameter of
        the function (``def train(G, D)``: which modules came in cannot be seen), unless the
        helper was inlined with the caller's argument in its place."""
        if not dotted(node):
            return False
        root = squash(self.parsed.code(node)).split(".")[0]
        return root == "self" or root not in frame.scope.params or any(old == root for old, _ in frame.subst)

    def bound_module(self, func, frame: _Frame) -> str | None:
        """A helper's parameter that the caller filled with a module: ``def g_loss(D, x)``."""
        if isinstance(func, cst.Name) and func.value in frame.bindings:
            value, caller, _, _ = frame.bindings[func.value]
            return self.module_of(self.text(value, caller))
        return None

    def helper(self, func, frame: _Frame) -> tuple[Scope, bool] | None:
        facts = self.facts
        target = None
        skip_self = False
        if isinstance(func, cst.Name) and func.value in facts.functions:
            target = facts.functions[func.value]
        elif isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self":
            cls = frame.scope.cls
            target, skip_self = facts.methods.get((cls, func.attr.value)) if cls else None, True
        scope = self._index.by_node.get(id(target)) if target is not None else None
        return (scope, skip_self) if scope is not None else None

    def inline(self, helper: tuple[Scope, bool], call: cst.Call, frame: _Frame, order: int, path: tuple,
               acc: _Acc, seen: set) -> None:
        scope, skip_self = helper
        marker = ("helper", id(scope.node))
        if marker in seen:
            acc.complete = False
            return
        params = list(scope.params[1:] if skip_self else scope.params)
        bindings: dict = {}
        for index, arg in enumerate(call.args):
            if arg.star:
                acc.complete = False
                break
            name = arg.keyword.value if arg.keyword else (params[index] if index < len(params) else None)
            if name:
                bindings[name] = (arg.value, frame, order, path)
        inner = _Frame(scope, (), bindings, frame.depth + 1)
        if not scope.returns:
            acc.complete = False
        for record in scope.returns:
            if not record.no_grad:
                self.expr(record.value, inner, record.order, record.path, acc, seen | {marker})


_CONTAINERS = (cst.Arg, cst.Element, cst.DictElement, cst.StarredDictElement, cst.FormattedStringExpression,
               cst.ComparisonTarget)


def _expression_children(node: cst.CSTNode):
    """Sub-expressions, read from the node's fields (LibCST's ``children`` walks the whole
    node with a visitor, which is costly on long scripts)."""
    for name in node.__dataclass_fields__:
        if name in ("lpar", "rpar") or name.startswith("whitespace"):
            continue
        value = getattr(node, name)
        for child in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(child, cst.BaseExpression):
                yield child
            elif isinstance(child, _CONTAINERS):
                yield from _expression_children(child)


def related(a: str, b: str) -> bool:
    """Two module keys that share parameters: equal, or one a submodule of the other."""
    return a == b or a.startswith((b + ".", b + "[")) or b.startswith((a + ".", a + "["))


def loss_expression(call: cst.Call, text) -> cst.BaseExpression | None:
    """The tensor a backward call differentiates: ``loss`` of ``loss.backward()``,
    ``scaler.scale(loss).backward()``, ``accelerator.backward(loss)``,
    ``self.manual_backward(loss)``, ``torch.autograd.backward(loss)``."""
    func = call.func
    if not isinstance(func, cst.Attribute):
        return call.args[0].value if call.args else None
    receiver = text(func.value)
    last = receiver.rsplit(".", 1)[-1]
    if func.attr.value == "manual_backward" or last in LOSS_ARGUMENT_RECEIVERS:
        return call.args[0].value if call.args else None
    return func.value


def lightning_owners(index: ScopeIndex, facts: ModuleFacts, text) -> dict[str, frozenset[str] | None]:
    """``opt_g, opt_d = self.optimizers()`` mapped to the models of the optimizers that
    ``configure_optimizers`` returns, in order."""
    configure = [f for (_, n), f in facts.methods.items() if n == "configure_optimizers"]
    scope = index.by_node.get(id(configure[0])) if configure else None
    if scope is None or len(scope.returns) != 1 or not index.unpacked:
        return {}
    value = scope.returns[0].value
    # `return [opt_g, opt_d], [sched]` or `return opt_g, opt_d` or `return [opt_g, opt_d]`
    if isinstance(value, (cst.Tuple, cst.List)) and value.elements and isinstance(value.elements[0].value, (cst.Tuple, cst.List)):
        value = value.elements[0].value
    if not isinstance(value, (cst.Tuple, cst.List)):
        return {}
    built = [_optimizer_owners(e.value, facts, text) for e in value.elements]
    owners: dict[str, frozenset[str] | None] = {}
    for names in index.unpacked:
        if len(names) == len(built):
            for name, found in zip(names, built):
                owners[facts.canon(name)] = found
    return owners


def _optimizer_owners(expr, facts: ModuleFacts, text) -> frozenset[str] | None:
    if isinstance(expr, cst.Call) and facts.is_factory(callee_name(expr)):
        owners: set[str] = set()
        for arg in expr.args:
            owners |= set(facts.param_owners(text(arg.value)) or ())
        return frozenset(owners) or None
    if isinstance(expr, (cst.Name, cst.Attribute)):
        return facts.owners_of(text(expr))
    return None
