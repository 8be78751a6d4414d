"""Predicates and module facts: is this receiver an optimizer, a model, an engine?

Recognition is by construction (``torch.optim.SGD(...)``, factories, Lightning's
``self.optimizers()``, custom ``Optimizer`` subclasses), by use (zeroed *and* stepped,
handed to ``scaler.step``) and by name (``optimizer``, ``opt_g``, ``self.optim``).
Schedulers, environments, EMA helpers and progress bars are never optimizers.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import libcst as cst

from zgcheck.cstwalk import walk as walk_cst
from zgcheck.parsing import ParsedModule

OPTIMIZER_CLASSES = frozenset(
    {
        "SGD", "Adam", "AdamW", "Adamax", "Adagrad", "Adadelta", "ASGD", "LBFGS", "NAdam",
        "RAdam", "RMSprop", "Rprop", "SparseAdam", "Adafactor", "Lion", "LAMB", "Lamb",
        "FusedAdam", "FusedLAMB", "FusedSGD", "DeepSpeedCPUAdam", "Adam8bit", "AdamW8bit",
        "PagedAdamW", "PagedAdamW8bit", "SGDW", "AdaBelief", "Ranger", "Lookahead", "ZeroRedundancyOptimizer",
        "Shampoo", "Muon", "SophiaG", "Prodigy", "DAdaptAdam", "Novograd", "AdamP", "SGDP", "Yogi",
        "Optimizer",
    }
)
# Base classes whose subclasses in the same file are optimizers.
OPTIMIZER_BASES = OPTIMIZER_CLASSES | {"Optimizer"}
_LITERAL_DATA = (cst.Dict, cst.List, cst.Set, cst.Tuple, cst.DictComp, cst.ListComp, cst.SetComp)
_DATA_TYPES = frozenset({"dict", "list", "set", "defaultdict", "OrderedDict", "Counter", "deque"})
SCHEDULER_END = re.compile(r"sched(?:ule|uler)?s?$", re.I)
FACTORY_RE = re.compile(r"^(create|build|get|make|init|setup|configure|new|load)_?(\w*_)?optim", re.I)
OPTIMIZER_TOKENS = frozenset({"optimizer", "optimiser", "optim", "opt", "optimizers", "optimisers", "optims"})
NOT_OPTIMIZER_TOKENS = frozenset(
    {"sched", "scheduler", "schedulers", "lr", "env", "envs", "ema", "progress", "pbar", "bar",
     "scaler", "warmup", "timer", "meter", "logger", "writer", "profiler", "prof", "engine", "state",
     "args", "config", "cfg", "options", "option", "opts", "parser", "swa"}
)
# `wrapper._optimizer`, `opt.optimizer`, `self.opt.base_optimizer`: the optimizer a wrapper holds.
_WRAPPED = re.compile(r"(.+)\.(?:_{0,2}(?:inner_|base_|wrapped_)?(?:optimizer|optim|opt))")
_WRAPPED_ENDS = ("optimizer", "optim", "opt")
PARAM_METHODS = frozenset({"parameters", "named_parameters"})
ZERO_METHODS = frozenset({"zero_grad", "clear_grad", "clear_gradients"})
OTHER_FRAMEWORKS = frozenset({"mxnet", "tensorflow", "jax", "flax", "paddle", "mindspore", "oneflow", "keras"})

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STRINGS = re.compile(r"'[^']*'|\"[^\"]*\"")
_CAMEL = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def squash(text: str) -> str:
    """Expression text without whitespace, used as a stable key."""
    return "".join(text.split())


def _sole_parameter(call: cst.Call) -> str | None:
    """`AdamW([w])` / `AdamW(params=[w])`: the one tensor the optimizer owns."""
    arg = next((a for a in call.args if a.keyword is None or a.keyword.value == "params"), None)
    value = arg.value if arg is not None else None
    if isinstance(value, (cst.List, cst.Tuple)) and len(value.elements) == 1:
        element = value.elements[0]
        if isinstance(element, cst.Element) and isinstance(element.value, cst.Name):
            return element.value.value
    return None


def last_name(key: str) -> str:
    """The last identifier of an expression key, ignoring strings and indexes."""
    names = _IDENT.findall(re.sub(r"\[[^\]]*\]", "", _STRINGS.sub("", key)))
    return names[-1] if names else ""


def name_tokens(name: str) -> list[str]:
    """Split ``optimizer_G`` / ``optD`` / ``genOptimizer`` into lower-case words."""
    words: list[str] = []
    for part in name.split("_"):
        words.extend(w.lower() for w in _CAMEL.findall(part))
    return words


def named_like_optimizer(key: str) -> bool:
    tokens = name_tokens(last_name(key))
    if any(t in NOT_OPTIMIZER_TOKENS for t in tokens):
        return False
    return any(t in OPTIMIZER_TOKENS for t in tokens)


# Plural words that name a container of optimizers: `self.optims.d`, `optimizers["g"]`.
CONTAINER_TOKENS = frozenset({"optimizers", "optimisers", "optims", "opts"})
RESETS_GRAD = re.compile(r"(zero|reset|clear).*grad|grad.*(zero|reset|clear)|set_grads?_(to_)?none|grads?_to_none", re.I)


def in_optimizer_container(key: str) -> bool:
    """``self.optims.d`` / ``self.optimizers.g``: a member of a container of optimizers."""
    names = _IDENT.findall(re.sub(r"\[[^\]]*\]", "", _STRINGS.sub("", key)))
    return len(names) >= 2 and any(t in CONTAINER_TOKENS for t in name_tokens(names[-2]))


def listed_names(node: cst.BaseExpression) -> list[cst.BaseExpression] | None:
    """The names of a literal list or tuple of names (`[w, b]`, `(opt_g, opt_d)`), else None."""
    if not isinstance(node, (cst.List, cst.Tuple)) or not node.elements:
        return None
    if all(isinstance(e, cst.Element) and isinstance(e.value, (cst.Name, cst.Attribute)) for e in node.elements):
        return [e.value for e in node.elements]
    return None


def says_it_resets(name: str) -> bool:
    """A callee whose name says it clears gradients (`clear_grads`, `reset_grad`, `zero_all_grads`)."""
    return bool(RESETS_GRAD.search(name))


def is_xla(key: str) -> bool:
    """torch_xla's `xm.optimizer_step(opt)` (``import torch_xla.core.xla_model as xm``)."""
    return key in ("xm", "xla_model") or key.endswith(".xla_model")


def named_like(key: str, words: frozenset[str]) -> bool:
    return any(t in words for t in name_tokens(last_name(key)))


def callee_name(call: cst.Call) -> str:
    func = call.func
    if isinstance(func, cst.Attribute):
        return func.attr.value
    if isinstance(func, cst.Name):
        return func.value
    return ""


def receiver(call: cst.Call) -> cst.BaseExpression | None:
    return call.func.value if isinstance(call.func, cst.Attribute) else None


@dataclass
class ModuleFacts:
    """What a module tells about its optimizers, models and helpers."""

    optimizers: set[str] = field(default_factory=set)
    not_optimizers: set[str] = field(default_factory=set)
    owners: dict[str, frozenset[str] | None] = field(default_factory=dict)
    # A tensor that is an optimizer's only parameter (`AdamW([w])`): clearing its `.grad`
    # resets that optimizer.
    sole_params: dict[str, str] = field(default_factory=dict)
    engines: set[str] = field(default_factory=set)
    scalers: set[str] = field(default_factory=set)
    zeroed: set[str] = field(default_factory=set)
    stepped: set[str] = field(default_factory=set)
    loop_vars: dict[str, str] = field(default_factory=dict)
    param_sources: dict[str, frozenset[str]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    custom_optimizers: set[str] = field(default_factory=set)
    prepared: set[str] = field(default_factory=set)
    uses_accumulate: bool = False
    other_framework: bool = False
    containers: dict[str, tuple[str, ...]] = field(default_factory=dict)  # `opts = [a, b]` -> ("a", "b")
    # Names bound to plain data (`self.log = {}`, `stats = defaultdict(list)`): their
    # `.update(...)` is the dict's, never a method of a class of the module.
    plain_data: set[str] = field(default_factory=set)
    # For project-wide resolution (zgcheck.project): local name -> (module, dots, imported
    # name or None for a module); name -> the class it is an instance of; class -> bases.
    imports: dict[str, tuple[str, int, str | None]] = field(default_factory=dict)
    instances: dict[str, str] = field(default_factory=dict)
    # The call that built each instance (`trainer = Trainer(D, d_optimizer)`): what its
    # constructor stores (`self.d_optimizer = d_optimizer`) is the caller's argument.
    constructions: dict[str, "cst.Call"] = field(default_factory=dict)
    bases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    passed: set[str] = field(default_factory=set)  # names handed to a call (Engine(update_fn))
    returned: set[str] = field(default_factory=set)  # names a function returns (`return train_step`)
    functions: dict[str, cst.FunctionDef] = field(default_factory=dict)
    methods: dict[tuple[str, str], cst.FunctionDef] = field(default_factory=dict)
    _by_name: "tuple[dict, dict[str, list[cst.FunctionDef]]] | None" = field(default=None, repr=False, compare=False)
    # Taught by the project's configuration (optimizer-factories / zeroing-engines).
    extra_factories: frozenset[str] = frozenset()
    extra_engines: frozenset[str] = frozenset()

    def methods_named(self, name: str) -> list[cst.FunctionDef]:
        """Every class's method called ``name`` (an index built on first use)."""
        if self._by_name is None or self._by_name[0] is not self.methods:
            index: dict[str, list[cst.FunctionDef]] = {}
            for (_, method_name), func in self.methods.items():
                index.setdefault(method_name, []).append(func)
            self._by_name = (self.methods, index)
        return self._by_name[1].get(name, [])

    def is_factory(self, callee: str) -> bool:
        """Does calling ``callee`` build an optimizer?"""
        return (
            callee in OPTIMIZER_CLASSES or callee in self.custom_optimizers or callee in self.extra_factories
            # `create_optimizer_scheduler(optimizer)` builds a scheduler, not an optimizer
            or (bool(FACTORY_RE.match(callee)) and not SCHEDULER_END.search(callee))
        )

    def instance_of(self, key: str) -> str | None:
        """The class (as written) of the instance ``key`` names or aliases, if built here."""
        return self.instances.get(key) or self.instances.get(self.canon(key))

    def canon(self, key: str) -> str:
        """Union-find root of ``key`` over simple assignments (``opt = self.optimizer``).
        The optimizer a wrapper holds is the wrapper (``self.policy_optimizer._optimizer``
        is ``self.policy_optimizer``): resetting one resets what the other steps."""
        root = key
        while self.aliases.get(root, root) != root:
            root = self.aliases[root]
        while key != root:  # path compression keeps repeated look-ups cheap
            self.aliases[key], key = root, self.aliases[key]
        if root.endswith(_WRAPPED_ENDS):
            outer = _WRAPPED.fullmatch(root)
            if outer is not None and (outer.group(1) in self.optimizers or named_like_optimizer(outer.group(1))):
                return self.canon(outer.group(1))
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.canon(a), self.canon(b)
        if ra != rb:
            low, high = sorted((ra, rb))
            self.aliases[high] = low

    def is_optimizer(self, key: str) -> bool:
        key = self.canon(key)
        if key in self.not_optimizers or key in self.engines:
            return False
        if key in self.optimizers:
            return True
        if key in self.zeroed and key in self.stepped and not named_like(key, NOT_OPTIMIZER_TOKENS):
            return True
        return named_like_optimizer(key) or in_optimizer_container(key)

    def is_engine(self, key: str) -> bool:
        if self.canon(key) in self.engines or key in self.extra_engines or last_name(key) in self.extra_engines:
            return True
        return "engine" in name_tokens(last_name(key))

    def is_scaler(self, key: str) -> bool:
        return self.canon(key) in self.scalers or "scaler" in name_tokens(last_name(key))

    def is_uncertain(self, key: str) -> bool:
        """A loop variable or an indexed optimizer: which instance it is cannot be seen."""
        return key in self.loop_vars or "[" in key

    def owners_of(self, key: str) -> frozenset[str] | None:
        return self.owners.get(self.canon(key))

    def param_owners(self, source: str) -> frozenset[str] | None:
        """Models whose parameters an expression (``model.parameters()``, ``params``) yields."""
        if source in self.param_sources:
            return self.param_sources[source]
        found = frozenset(m.group(1) for m in re.finditer(r"([\w.\[\]'\"]+?)\.(?:named_)?parameters\(", source))
        return found or None


class _FactCollector(cst.CSTVisitor):
    def __init__(self, parsed: ParsedModule, facts: ModuleFacts) -> None:
        self.parsed = parsed
        self.facts = facts
        self.classes: list[str] = []
        self.depth = 0
        self.other_imports: set[str] = set()
        self.calls_for: dict[str, str] = {}
        self.torch_imported = False

    def text(self, node: cst.CSTNode) -> str:
        return squash(self.parsed.code(node))

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.classes.append(node.name.value)
        if len(self.classes) == 1:
            self.facts.bases[node.name.value] = tuple(
                self.text(b.value) for b in node.bases if isinstance(b.value, (cst.Name, cst.Attribute)) and b.keyword is None
            )
        for base in node.bases:
            if last_name(self.text(base.value)) in OPTIMIZER_BASES | self.facts.custom_optimizers:
                self.facts.custom_optimizers.add(node.name.value)

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self.classes.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        if self.depth == 0:
            if self.classes:
                self.facts.methods.setdefault((self.classes[-1], node.name.value), node)
            else:
                self.facts.functions.setdefault(node.name.value, node)
        self.depth += 1

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self.depth -= 1

    def visit_For(self, node: cst.For) -> None:
        if isinstance(node.target, (cst.Name, cst.Attribute)):
            self.facts.loop_vars[self.text(node.target)] = self.text(node.iter)

    def visit_Return(self, node: cst.Return) -> None:
        if isinstance(node.value, cst.Name):
            self.facts.returned.add(node.value.value)

    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            module = self.text(alias.name)
            self._imported(module)
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                self.facts.imports[alias.asname.name.value] = (module, 0, None)
            else:
                top = module.split(".")[0]
                self.facts.imports.setdefault(top, (top, 0, None))

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        module = self.text(node.module) if node.module is not None else ""
        if module:
            self._imported(module)
        if isinstance(node.names, cst.ImportStar):
            return
        level = len(node.relative)
        for alias in node.names:
            name = self.text(alias.name)
            local = alias.asname.name.value if alias.asname is not None and isinstance(alias.asname.name, cst.Name) else name
            self.facts.imports[local] = (module, level, name)

    def visit_Param(self, node: cst.Param) -> None:
        annotation = node.annotation.annotation if node.annotation is not None else None
        if isinstance(annotation, (cst.Name, cst.Attribute)):
            self.facts.instances.setdefault(node.name.value, self.text(annotation))

    def _imported(self, module: str) -> None:
        top = module.split(".")[0]
        if top in OTHER_FRAMEWORKS:
            self.other_imports.add(top)
        elif top in ("torch", "lightning", "pytorch_lightning", "accelerate", "deepspeed", "timm", "transformers"):
            self.torch_imported = True

    def visit_Call(self, node: cst.Call) -> None:
        for arg in node.args:
            if isinstance(arg.value, cst.Name):
                self.facts.passed.add(arg.value.value)
        name = callee_name(node)
        recv = receiver(node)
        if recv is None:
            return
        key = self.text(recv)
        if name == "accumulate":
            self.facts.uses_accumulate = True
        if name in ZERO_METHODS:
            self.facts.zeroed.add(key)
        elif name == "step":
            self.facts.stepped.add(key)
            if node.args and self.facts.is_scaler(key):
                self.facts.optimizers.add(self.text(node.args[0].value))
        elif name == "optimizer_step" and node.args and is_xla(key):
            self.facts.optimizers.add(self.text(node.args[0].value))

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            self._assigned(target.target, node.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._assigned(node.target, node.value)

    def _assigned(self, target: cst.BaseExpression, value: cst.BaseExpression) -> None:
        facts = self.facts
        names = [self.text(e.value) for e in target.elements] if isinstance(target, (cst.Tuple, cst.List)) else [self.text(target)]
        if len(names) == 1:
            members = self._members(names[0], value)
            if members:
                facts.containers[names[0]] = members
        if len(names) == 1 and (isinstance(value, _LITERAL_DATA) or (
                isinstance(value, cst.Call) and callee_name(value) in _DATA_TYPES)):
            facts.plain_data.add(names[0])
        if isinstance(value, (cst.Name, cst.Attribute)) and len(names) == 1:
            source = self.text(value)
            if source not in ("None", "True", "False"):
                facts.union(names[0], source)
            if last_name(source) in OPTIMIZER_CLASSES | facts.custom_optimizers and "." not in names[0]:
                # `optimizer_class = bnb.optim.AdamW8bit`: calling it builds an optimizer.
                facts.custom_optimizers.add(names[0])
            return
        if isinstance(value, cst.Call) and isinstance(value.func, (cst.Name, cst.Attribute)) and len(names) == 1:
            if callee_name(value)[:1].isupper():  # `self.scaler = NativeScaler()`: an instance
                facts.instances[names[0]] = self.text(value.func)
                facts.constructions[names[0]] = value
        call = value
        while isinstance(call, cst.Call) and callee_name(call) in ("list", "tuple") and call.args:
            call = call.args[0].value
        if not isinstance(call, cst.Call):
            return
        callee = callee_name(call)
        if callee in PARAM_METHODS or callee == "chain":
            owners = facts.param_owners(self.text(call))
            if owners and len(names) == 1:
                facts.param_sources[names[0]] = owners
            return
        if len(names) == 1:
            self.calls_for[names[0]] = callee  # resolved after the pass: a factory in this file
        if facts.is_factory(callee):
            if len(names) == 1:
                facts.optimizers.add(names[0])
                owners = self._owners(call)
                if names[0] in facts.owners and facts.owners[names[0]] != owners:
                    # The same name built in two functions (`optimizer` over G in one, over
                    # D in another): either may be meant; unknown if either is.
                    earlier = facts.owners[names[0]]
                    owners = None if earlier is None or owners is None else earlier | owners
                facts.owners[names[0]] = owners
                sole = _sole_parameter(call)
                if sole is not None:
                    facts.sole_params[sole] = names[0]
        elif callee == "optimizers" and isinstance(call.func, cst.Attribute):
            facts.optimizers.update(names)
        elif callee == "initialize" and "deepspeed" in self.text(call.func):
            facts.engines.add(names[0])
        elif callee == "GradScaler" and len(names) == 1:
            facts.scalers.add(names[0])
        elif callee == "prepare" and len(names) == len(call.args):
            for name, arg in zip(names, call.args):
                facts.union(name, self.text(arg.value))
            if "accelerator" in self.text(call.func).lower():
                facts.prepared.update(names)
        elif "scheduler" in callee.lower() or "lr" in name_tokens(callee) or callee in ("make", "tqdm", "trange"):
            facts.not_optimizers.update(names)

    def _members(self, name: str, value: cst.BaseExpression) -> tuple[str, ...]:
        """The members of a literal container: `[a, b]`, `(a, b)`, `{"g": a}`, `dict(g=a)`,
        `SimpleNamespace(g=a)`, as the keys by which the code reaches them."""
        if isinstance(value, (cst.List, cst.Tuple)):
            return tuple(self.text(n) for n in listed_names(value) or ())
        if isinstance(value, cst.Dict) and value.elements:
            keys = [e.key for e in value.elements if isinstance(e, cst.DictElement)]
            if len(keys) == len(value.elements) and all(isinstance(k, cst.SimpleString) for k in keys):
                return tuple(f"{name}[{self.text(k)}]" for k in keys)
            return ()
        if isinstance(value, cst.Call) and callee_name(value) in ("dict", "SimpleNamespace", "Namespace", "EasyDict"):
            keywords = [a.keyword.value for a in value.args if a.keyword is not None]
            if keywords and len(keywords) == len(value.args):
                if callee_name(value) == "dict":
                    return tuple(f'{name}["{k}"]' for k in keywords)
                return tuple(f"{name}.{k}" for k in keywords)
        return ()

    def _owners(self, call: cst.Call) -> frozenset[str] | None:
        owners: set[str] = set()
        for arg in call.args:
            found = self.facts.param_owners(self.text(arg.value))
            if found:
                owners |= found
            elif isinstance(arg.value, cst.Name) and arg.value.value in self.facts.param_sources:
                owners |= self.facts.param_sources[arg.value.value]
        return frozenset(owners) or None


class _ReturnedCalls(cst.CSTVisitor):
    def __init__(self) -> None:
        self.calls: list[cst.Call] = []

    def visit_Return(self, node: cst.Return) -> None:
        if isinstance(node.value, cst.Call):
            self.calls.append(node.value)

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False


def _resolve_local_factories(collector: _FactCollector, facts: ModuleFacts) -> None:
    """`self.optimizer = self.create_optimizer()` with `create_optimizer` in this file
    returning `AdamW(self.model.parameters())`: an optimizer, owned by `self.model`."""
    returned: dict[str, list[cst.Call]] = {}
    method_names = {n for (_, n) in facts.methods}
    for name, callee in collector.calls_for.items():
        if callee not in facts.functions and callee not in method_names:
            continue
        if callee not in returned:  # each factory is read once, however often it is called
            defs = [facts.functions.get(callee)] + facts.methods_named(callee)
            finder = _ReturnedCalls()
            for func in filter(None, defs):
                walk_cst(func, finder)
            returned[callee] = finder.calls
        for call in returned[callee]:
            if facts.is_factory(callee_name(call)):
                facts.optimizers.add(name)
                owners = collector._owners(call)
                if owners and facts.owners.get(name) is None:
                    facts.owners[name] = owners


def collect_facts(
    parsed: ParsedModule, factories: frozenset[str] = frozenset(), engines: frozenset[str] = frozenset()
) -> ModuleFacts:
    """One pass over the module collecting optimizers, ownership, aliases and helpers.

    ``factories`` and ``engines`` are names the project's configuration adds."""
    facts = ModuleFacts(extra_factories=factories, extra_engines=engines)
    collector = _FactCollector(parsed, facts)
    walk_cst(parsed.module, collector)
    _resolve_local_factories(collector, facts)
    # MXNet, Paddle, TensorFlow... have their own step/backward with other semantics.
    facts.other_framework = bool(collector.other_imports) and not collector.torch_imported
    # Re-key everything on alias roots, so `opt = self.optimizer` shares what is known.
    owners: dict[str, frozenset[str] | None] = {}
    for key, found in facts.owners.items():
        root = facts.canon(key)
        owners[root] = found if owners.get(root) is None else owners[root] | (found or frozenset())
    facts.owners = owners
    for name in ("optimizers", "not_optimizers", "engines", "scalers", "zeroed", "stepped", "prepared"):
        setattr(facts, name, {facts.canon(k) for k in getattr(facts, name)})
    return facts
