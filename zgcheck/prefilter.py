"""Which functions of a module can hold a finding, decided on CPython's `ast` before LibCST.

Every rule needs, in one analysed region (the module's top level or a function, with the
same-module helpers it calls inlined), a backward call together with an optimizer step or
a manual update that reads ``p.grad`` (:func:`rule_can_fire`). This module finds the event
calls per function, spreads them along the module's own call graph (a function that
*names* another one reaches its events: calls, closures handed to ``step()``, engines'
process functions, methods called on ``self`` or on anything else), and says whether any
function or the top level reaches what a rule needs.

It is cheap where it matters: only statements are walked (expressions are walked only in
the few statements whose lines hold an event word) and references are found by one
regular expression over the text per round of the fixpoint. Words in comments and strings
may add references (conservative), never events.

When a file does go on, :meth:`EventScan.sliced` blanks out the functions no analysis can
need (no event reached, not named by the code that stays, writing no name that code reads),
so LibCST parses and walks only what matters; line and column numbers do not move.
"""
from __future__ import annotations

import ast
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping

from zgcheck.sources import LOSS_SCALER

INPLACE_UPDATES = frozenset({"add_", "sub_", "copy_", "addcdiv_", "addcmul_", "mul_", "lerp_"})
GRAD_CLEARS = frozenset({"zero_", "fill_"})
ZERO_METHODS = frozenset({"zero_grad", "clear_grad", "clear_gradients"})
# Frameworks whose imports switch the analysis off (recognize.OTHER_FRAMEWORKS): a file that
# names one is never sliced, so what decides that switch stays in view.
OTHER_FRAMEWORKS = re.compile(r"\b(?:mxnet|tensorflow|jax|flax|paddle|mindspore|oneflow|keras)\b")

# Lines where an event may be: `.backward` / `.step` / `.grad` (spaces and line
# continuations allowed after the dot) or a name holding zero_grad / clear_grad.
_GAP = r"[ \t\f\\\n]*"
_HIT = re.compile(rf"\.{_GAP}(?:(?:manual_)?backward|(?:optimizer_)?step|grad)\b|zero_grad|clear_grad|{LOSS_SCALER}[ \t]*\(")
_NAMES_EVENTS = re.compile(r"backward|step", re.I)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:[ \t]*\.[ \t]*[A-Za-z_][A-Za-z0-9_]*)*")
# Calls whose result the analysis may record as a fact about the name it is assigned to
# (recognize.py: optimizer classes and factories, `self.optimizers()`, parameters and
# ownership, schedulers, GradScaler, Accelerate's prepare, DeepSpeed's initialize); calls of
# a function or class of the same file and configured factories count too. Any other call
# (`self.fc = nn.Linear(...)`) records nothing.
FACT_CALLEES = re.compile(
    r"optim|sgd|adam|lbfgs|rmsprop|rprop|adagrad|adadelta|lion|lamb|shampoo|muon|sophia|prodigy|dadapt|novograd|"
    r"yogi|ranger|lookahead|adafactor|adabelief|param|chain|initiali[sz]e|scaler|prepare|sched|lr|make|tqdm|"
    r"trange|engine|zero|grad|step|list|tuple|dict",
    re.IGNORECASE,
)
_BODIES = ("body", "orelse", "finalbody", "handlers", "cases")
# Called by a framework, never by the module: Lightning's configure_optimizers says which
# optimizer owns which parameters (what `self.optimizers()` hands back; ZG007's reach).
ALWAYS_KEPT = frozenset({"configure_optimizers"})
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)


def rule_can_fire(kinds: set[str] | frozenset[str]) -> bool:
    """Can a rule report anything in a region that holds these event kinds? Every rule
    (ZG001-ZG007) needs a backward pass and a step or a hand-written update of `p.grad`."""
    return "backward" in kinds and ("step" in kinds or "manual" in kinds)


def _mentions_grad(node: ast.AST) -> bool:
    return any(type(sub) is ast.Attribute and sub.attr == "grad" for sub in ast.walk(node))


def _is_grad(node: ast.AST) -> bool:
    """`p.grad` or `p.grad.data`."""
    if type(node) is ast.Attribute and node.attr == "data":
        node = node.value
    return type(node) is ast.Attribute and node.attr == "grad"


def _key(node: ast.AST) -> str | None:
    """The dotted name a fact about ``node`` is keyed by (`self.opts["g"]` -> `self.opts`;
    the analysis keys facts by the expression's text). None when it is no dotted name."""
    while type(node) is ast.Subscript or type(node) is ast.Starred:
        node = node.value
    parts = []
    while type(node) is ast.Attribute:
        parts.append(node.attr)
        node = node.value
    if type(node) is not ast.Name:
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _dotted_prefixes(text: str) -> set[str]:
    """Every dotted name in ``text`` and its prefixes (`self.opt.step` gives `self`,
    `self.opt` and `self.opt.step`)."""
    found = set()
    for match in _DOTTED.finditer(text):
        chain = match.group(0)
        if "." not in chain:
            found.add(chain)
            continue
        parts = [part.strip() for part in chain.split(".")]
        for end in range(1, len(parts) + 1):
            found.add(".".join(parts[:end]))
    return found


def _expression_kinds(node: ast.AST, kinds: set, receivers: set) -> None:
    """Event kinds of the expressions of one statement (its nested statements excluded),
    and the last names of what is zeroed or stepped (facts are keyed by them)."""
    Attribute, Call = ast.Attribute, ast.Call
    stack = [node]
    while stack:
        cur = stack.pop()
        t = type(cur)
        if t is Call:
            func = cur.func
            if type(func) is Attribute:
                attr = func.attr
                if attr == "backward" or attr == "manual_backward":
                    kinds.add("backward")
                elif attr == "step" or attr == "optimizer_step":
                    kinds.add("step")
                    receivers.update(filter(None, map(_key, (func.value, *cur.args[:1]))))
                elif "zero_grad" in attr or attr in ZERO_METHODS or (attr in GRAD_CLEARS and _is_grad(func.value)):
                    kinds.add("zero")
                    receivers.update(filter(None, map(_key, (func.value, *cur.args))))
                elif attr in INPLACE_UPDATES and any(_mentions_grad(a) for a in (*cur.args, *(k.value for k in cur.keywords))):
                    kinds.add("manual")
            elif type(func) is ast.Name and func.id.endswith(LOSS_SCALER) and len(cur.args) >= 2:
                kinds.update(("backward", "step"))  # a timm-style loss scaler object
                receivers.update(filter(None, [_key(cur.args[1])]))
            elif type(func) is ast.Name and "zero_grad" in func.id:
                kinds.add("zero")
                receivers.update(filter(None, map(_key, cur.args)))
        elif t is ast.AugAssign:
            if _mentions_grad(cur.value):
                kinds.add("manual")
        elif t is ast.Assign or t is ast.AnnAssign:
            targets = cur.targets if t is ast.Assign else [cur.target]
            if any(_is_grad(target) for target in targets):
                kinds.add("zero")  # `p.grad = None` (or an update written as an assignment)
                kinds.add("manual")
            elif cur.value is not None and any(type(g) is Attribute and g.attr == "data" for g in targets) and _mentions_grad(cur.value):
                kinds.add("manual")
        for name, value in ast.iter_fields(cur):
            if type(value) is list:
                if name not in _BODIES:
                    stack.extend(v for v in value if isinstance(v, ast.AST))
            elif isinstance(value, ast.AST):
                stack.append(value)


def _callee(call: ast.Call) -> str:
    func = call.func
    return func.attr if type(func) is ast.Attribute else func.id if type(func) is ast.Name else ""


def _fact_callee(value: ast.AST | None) -> str | None:
    """Can assigning ``value`` give the analysis a fact about the target? "" when it can
    (an alias, a collection of names, a loop target: ``value`` None), None when it cannot
    (a constant, arithmetic, ...), and for a call the callee's name, judged later by
    :meth:`EventScan.carries_fact`."""
    while type(value) is ast.Await:
        value = value.value
    if value is None:
        return ""
    t = type(value)
    if t is ast.Call:
        return _key(value.func) or _callee(value) or ""
    if t is ast.IfExp:
        body, orelse = _fact_callee(value.body), _fact_callee(value.orelse)
        return body if orelse is None else orelse if body is None else ""
    return "" if t in (ast.Name, ast.Attribute, ast.Subscript, ast.List, ast.Tuple, ast.Dict, ast.Set, ast.Starred, ast.NamedExpr) else None


def _written(stmt: ast.stmt, shared: set[str]) -> tuple[list[str], str | None]:
    """Keys of state that ``stmt`` writes where another function can read it, with what
    :func:`_fact_callee` says of the value: attributes (`self.opt = ...` writes `self.opt`;
    `self.opts["g"] = ...` writes `self.opts`) and the module names in ``shared``
    (declared `global` / `nonlocal`). A function's own locals are its own: another
    function's `model = ...` says nothing about them."""
    t = type(stmt)
    if t is ast.Assign:
        targets, callee = stmt.targets, _fact_callee(stmt.value)
    elif t in (ast.AnnAssign, ast.AugAssign):
        targets, callee = [stmt.target], _fact_callee(stmt.value) if stmt.value is not None else None
    elif t in (ast.For, ast.AsyncFor):
        targets, callee = [stmt.target], ""
    elif t in (ast.With, ast.AsyncWith):
        targets, callee = [item.optional_vars for item in stmt.items if item.optional_vars is not None], ""
    else:
        return [], None
    if callee is None:
        return [], None
    keys = []
    stack = list(targets)
    while stack:
        target = stack.pop()
        if type(target) in (ast.Tuple, ast.List):
            stack.extend(target.elts)
            continue
        key = _key(target)
        if key is not None and ("." in key or key in shared):
            keys.append(key)
    return keys, callee


class EventScan:
    """Functions of a module (scope 0 is the top level, class bodies included) with the
    event kinds each holds, on lines that CPython's parser agrees are code."""

    def __init__(self, text: str, tree: ast.Module, helpers: Mapping[str, frozenset[str]] | None = None,
                 factories: frozenset[str] = frozenset()) -> None:
        self.original = text
        # CPython counts \r\n and a lone \r as one line break each, as \n does.
        self.text = text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text
        self.breaks = [m.start() for m in re.finditer("\n", self.text)]
        self.hits = sorted({self.line_of(m.start()) for m in _HIT.finditer(self.text)})
        self.helpers = dict(helpers or {})
        self.names: list[str] = ["<module>"]
        self.starts: list[int] = [0]
        self.ends: list[int] = [len(self.breaks) + 2]
        self.parents: list[int] = [-1]
        self.kinds: list[set[str]] = [set()]
        self.writes: list[set[str]] = [set()]
        self.shared: list[set[str]] = [set()]
        self.nodes: list[ast.AST | None] = [tree]
        self._def_lines: set[tuple[int, str]] = set()  # a def's own name is no reference
        self.factories = factories
        self.classes: set[str] = set()
        self.owners: list[tuple[str | None, tuple[str, ...]]] = [(None, ())]
        # local name -> (module, dots, imported name or None for a module)
        self.imports: dict[str, tuple[str, int, str | None]] = {}
        # Per scope: (key written, callee of the value) to judge once every def is known.
        self.pending: list[list[tuple[str, str]]] = [[]]
        self._walk(tree.body)
        order = sorted(range(1, len(self.names)), key=lambda i: self.starts[i])
        self._by_start = order
        self._start_lines = [self.starts[i] for i in order]
        self._reached: list[set[str]] | None = None

    def line_of(self, offset: int) -> int:
        return bisect_left(self.breaks, offset) + 1

    def _hit_between(self, start: int, end: int) -> bool:
        i = bisect_left(self.hits, start)
        return i < len(self.hits) and self.hits[i] <= end

    def _walk(self, body: list) -> None:
        # (statement, scope, enclosing class name, that class's base names)
        stack: list = [(stmt, 0, None, ()) for stmt in reversed(body)]
        while stack:
            stmt, scope, cls, bases = stack.pop()
            start, end = stmt.lineno, stmt.end_lineno or stmt.lineno
            decorators = getattr(stmt, "decorator_list", None)
            if decorators:
                start = min(start, *(d.lineno for d in decorators))
            hit = self._hit_between(start, end)
            t = type(stmt)
            if t in _DEFS:
                inner = len(self.names)
                self.names.append(stmt.name)
                self.starts.append(start)
                self.ends.append(end)
                self.parents.append(scope)
                self.kinds.append(set())
                self.writes.append(set())
                self.shared.append(set())
                self.pending.append([])
                self.nodes.append(stmt)
                self.owners.append((cls, bases))
                self._def_lines.add((stmt.lineno, stmt.name))
                if hit:  # decorators and default values run in the enclosing scope
                    for decorator in stmt.decorator_list:
                        _expression_kinds(decorator, self.kinds[scope], self.writes[scope])
                    _expression_kinds(stmt.args, self.kinds[scope], self.writes[scope])
                stack.extend((child, inner, None, ()) for child in reversed(stmt.body))
                continue
            if t is ast.ClassDef:
                self.classes.add(stmt.name)
                names = tuple(filter(None, (_key(base) for base in stmt.bases)))
                stack.extend((child, scope, stmt.name, names) for child in reversed(stmt.body))
                if hit:
                    _expression_kinds(stmt, self.kinds[scope], self.writes[scope])
                continue
            if t is ast.ImportFrom:
                for alias in stmt.names:
                    self.imports[alias.asname or alias.name] = (stmt.module or "", stmt.level, alias.name)
            elif t is ast.Import:
                for alias in stmt.names:
                    local = alias.asname or alias.name.split(".")[0]
                    self.imports[local] = (alias.name if alias.asname else local, 0, None)
            elif t is ast.Global or t is ast.Nonlocal:
                self.shared[scope].update(stmt.names)
            elif scope != 0:  # the top level always stays: what it writes is in view
                keys, callee = _written(stmt, self.shared[scope])
                self.pending[scope].extend((key, callee) for key in keys)
            for field in _BODIES:
                for child in reversed(getattr(stmt, field, None) or ()):
                    if isinstance(child, ast.stmt):
                        stack.append((child, scope, cls, bases))
                    else:  # except handlers and match cases hold statements too
                        stack.extend((s, scope, cls, bases) for s in reversed(child.body))
                        if hit:
                            _expression_kinds(child, self.kinds[scope], self.writes[scope])
            if hit:
                _expression_kinds(stmt, self.kinds[scope], self.writes[scope])

    # ----- other modules of the project ---------------------------------------------
    def index(self) -> dict[str, set[str]]:
        """What this module offers other modules: each top-level function and class (the
        union of its methods) and each method by name, with the event kinds it reaches."""
        reached = self.reached()
        offered: dict[str, set[str]] = {}
        for i in range(1, len(self.names)):
            cls, _ = self.owners[i]
            if self.parents[i] == 0 and cls is None:
                offered.setdefault(self.names[i], set()).update(reached[i])
            elif cls is not None:
                offered.setdefault(self.names[i], set()).update(reached[i])
                offered.setdefault(cls, set()).update(reached[i])
        return {name: kinds for name, kinds in offered.items() if kinds}

    def partial(self) -> list[int]:
        """Scopes that hold some event but cannot fire on their own."""
        return [i for i, kinds in enumerate(self.reached()) if kinds and not rule_can_fire(kinds)]

    def external_helpers(self, find: Callable[[str, int], str | None],
                         index: Callable[[str, frozenset[str]], dict[str, set[str]]]) -> dict[str, frozenset[str]]:
        """Event kinds of the other modules' functions and classes that a partial scope
        names: an imported name, a name of an imported module, or a method of an imported
        base class of its class. ``find(module, level)`` is a module's file (None outside
        the project); ``index(path, need)`` is :meth:`index` of that file, or empty when its
        bytes cannot offer the kinds in ``need``."""
        if not self.imports:
            return {}
        partial = self.partial()
        eventless = not partial
        if partial:
            reached = self.reached()
            # What the other modules would have to offer: a backward where one is missing,
            # a step or manual update where one is missing.
            need = frozenset(("backward",) * any("backward" not in reached[i] for i in partial)
                             + ("step",) * any(not reached[i] & {"step", "manual"} for i in partial))
        else:
            # No event here at all: a loop may still run one through a helper of another
            # module that holds both and says so (`backward_and_step(loss, optimizer)`; the
            # words are what let this file through the lexical scan). Only such names are
            # looked up: a library module imports dozens of others.
            partial, need = [0], frozenset(("backward", "step"))
        lines = self.text.split("\n")
        mentioned: set[str] = set()
        for i in partial:
            if i == 0:
                found = set(_IDENTIFIER.findall(self.text))
                mentioned.update({n for n in found if _NAMES_EVENTS.search(n)} if eventless else found)
                break
            mentioned.update(_IDENTIFIER.findall("\n".join(lines[self.starts[i] - 1 : self.ends[i]])))
            mentioned.update(base.split(".")[0] for base in self.owners[i][1])
        helpers: dict[str, set[str]] = {}
        for local in mentioned & self.imports.keys():
            module, level, name = self.imports[local]
            if name is not None:
                path = find(f"{module}.{name}" if module else name, level)
                if path is None:
                    path = find(module, level)
                    offered = index(path, need) if path else {}
                    if name in offered:
                        helpers.setdefault(local, set()).update(offered[name])
                    for method, kinds in offered.items():  # methods of an imported class
                        helpers.setdefault(method, set()).update(kinds)
                    continue
            else:
                path = find(module, level)
            for member, kinds in (index(path, need) if path else {}).items():
                helpers.setdefault(member, set()).update(kinds)
                helpers.setdefault(local, set()).update(kinds)
        return {name: frozenset(kinds) for name, kinds in helpers.items() if kinds}

    def with_helpers(self, helpers: Mapping[str, frozenset[str]]) -> None:
        """Count ``helpers`` (names defined elsewhere) from now on."""
        self.helpers.update(helpers)
        self._reached = None

    def scopes_at(self, line: int) -> tuple[int, ...]:
        """The innermost function holding ``line`` (and its parent on the def's first
        lines, where decorators and default values run)."""
        i = bisect_right(self._start_lines, line) - 1
        scope = self._by_start[i] if i >= 0 else 0
        while scope > 0 and self.ends[scope] < line:
            scope = self.parents[scope]
        return (scope, self.parents[scope]) if scope > 0 and self.starts[scope] == line else (scope,)

    def _references(self, names: set[str]) -> dict[str, set[int]]:
        """Scopes whose lines name each of ``names`` (any mention counts)."""
        found: dict[str, set[int]] = {name: set() for name in names}
        if names:
            pattern = re.compile(r"\b(?:" + "|".join(sorted(map(re.escape, names))) + r")\b")
            for match in pattern.finditer(self.text):
                name, line = match.group(0), self.line_of(match.start())
                if (line, name) not in self._def_lines:
                    found[name].update(self.scopes_at(line))
        return found

    def reached(self) -> list[set[str]]:
        """Event kinds each scope holds or reaches through the functions it names, and
        through ``helpers`` (names whose calls are known to hold events)."""
        if self._reached is not None:
            return self._reached
        reached = [set(k) for k in self.kinds]
        by_name: dict[str, list[int]] = {}
        for i in range(1, len(self.names)):
            by_name.setdefault(self.names[i], []).append(i)
        for name, kinds in self.helpers.items():  # pseudo scopes without lines of their own
            if name not in by_name:
                by_name[name] = [len(reached)]
                self.names.append(name)
                reached.append(set(kinds))
        references: dict[str, set[int]] = {}
        work = [i for i in range(1, len(reached)) if reached[i]]
        while work:
            references.update(self._references({self.names[i] for i in work} - references.keys()))
            grown = []
            for target in work:
                for scope in references[self.names[target]]:
                    if scope != target and not reached[target] <= reached[scope]:
                        reached[scope] |= reached[target]
                        if scope > 0:
                            grown.append(scope)
            work = grown
        self._reached = reached[: len(self.kinds)]
        del self.names[len(self.kinds):]
        return self._reached

    def can_fire(self) -> bool:
        return any(rule_can_fire(kinds) for kinds in self.reached())

    # ----- slicing --------------------------------------------------------------
    def removable(self) -> list[int]:
        """Outermost functions no analysis can need: no rule can fire in them (with what
        they call), the code that stays never names them, and they neither write nor zero
        nor step state that code names (`self.opt`, a global). Found by a fixpoint: what
        stays may name more functions, which then stay too."""
        if OTHER_FRAMEWORKS.search(self.text):
            return []
        reached = self.reached()
        local = set(self.names) | self.classes | set(self.factories) | self.imports.keys()
        subtree_writes = [set(w) for w in self.writes]
        for scope, pending in enumerate(self.pending):
            subtree_writes[scope].update(key for key, callee in pending if self.carries_fact(callee, local))
        for i in range(len(self.names) - 1, 0, -1):  # children come after their parents
            subtree_writes[self.parents[i]] |= subtree_writes[i]
        candidates = {
            i for i in range(1, len(self.names)) if not rule_can_fire(reached[i]) and self.names[i] not in ALWAYS_KEPT
        }
        # Only the outermost candidates are judged: a function nested in one that goes
        # goes with it (its name is local to that function), and one nested in a function
        # that stays is judged in the next round, once its parent's lines are in view.
        while True:
            outer = self._outermost(candidates)
            kept = self._blanked(outer)
            words, keys = set(_IDENTIFIER.findall(kept)), _dotted_prefixes(kept)
            staying = [i for i in outer if self.names[i] in words or subtree_writes[i] & keys]
            if not staying:
                return outer
            candidates.difference_update(staying)

    @staticmethod
    def carries_fact(callee: str, local: set[str]) -> bool:
        """A value built by calling ``callee`` (its dotted name; "" for no call) may be a
        fact: an optimizer class or factory (FACT_CALLEES), a function or class of this
        file, a configured factory, or anything imported (an instance whose methods the
        project resolution follows: `self.strategy = Strategy(...)`)."""
        if not callee:
            return True
        last = callee.rsplit(".", 1)[-1]
        return bool(FACT_CALLEES.search(last)) or last in local or callee.split(".", 1)[0] in local

    def _outermost(self, candidates: set[int]) -> list[int]:
        result = []
        for i in sorted(candidates, key=lambda i: self.starts[i]):
            parent = self.parents[i]
            while parent > 0 and parent not in candidates:
                parent = self.parents[parent]
            if parent <= 0:
                result.append(i)
        return result

    def _blanked(self, removed: list[int]) -> str:
        """The text with each removed function's lines emptied: its first line becomes
        `pass` at the same indentation (its block stays valid), the others blank."""
        if not removed:
            return self.text
        lines = self.text.split("\n")
        for i in removed:
            first = lines[self.starts[i] - 1]
            lines[self.starts[i] - 1] = first[: len(first) - len(first.lstrip())] + "pass"
            for row in range(self.starts[i], self.ends[i]):
                lines[row] = ""
        return "\n".join(lines)

    def sliced(self) -> tuple[str | None, set[int]]:
        """Text for LibCST without the removable functions (None: nothing to remove), and
        the ids of the removed `ast` nodes."""
        removed = self.removable()
        if not removed:
            return None, set()
        return self._blanked(removed), {id(self.nodes[i]) for i in removed}


# ----- per process: what each module of the project offers ---------------------------
MAX_INDEXED_BYTES = 1024 * 1024  # as project.MAX_MODULE_BYTES: helpers live in ordinary files
_OFFERS = {
    "backward": re.compile(rb"\.[ \t\f\\\r\n]*(?:manual_)?backward[ \t\f\\\r\n]*\("),
    "step": re.compile(rb"\.[ \t\f\\\r\n]*(?:(?:optimizer_)?step[ \t\f\\\r\n]*\(|grad\b)"),
}
_INDEX: dict[tuple[str, int, int], dict[str, set[str]] | None] = {}
_BYTES: dict[tuple[str, int, int], frozenset[str]] = {}
_DIGESTS: dict[str, str] = {}  # content hash of the bytes each decision was made on


def module_digest(path: str) -> str:
    """Content hash of the bytes :func:`module_index` last read at ``path`` ("" if none):
    a result that relied on the index holds only while the file keeps these bytes."""
    return _DIGESTS.get(path, "")


def module_index(path: str, need: frozenset[str] = frozenset(("backward", "step"))) -> dict[str, set[str]]:
    """:meth:`EventScan.index` of the module at ``path`` (cached per process and file
    version); empty when its bytes cannot offer any kind in ``need`` (most imported
    modules: no parse at all), or when it cannot be read, decoded or parsed."""
    import os
    import warnings

    from zgcheck.cache import content_hash
    from zgcheck.sources import decode, read_bytes

    try:
        info = os.stat(path)
    except OSError:
        return {}
    key = (path, info.st_mtime_ns, info.st_size)
    offers = _BYTES.get(key)
    data = None
    if offers is None:
        data = read_bytes(path)
        _DIGESTS[path] = content_hash(data) if isinstance(data, bytes) else ""
        if info.st_size > MAX_INDEXED_BYTES:
            data = None
        offers = _BYTES[key] = frozenset(k for k, p in _OFFERS.items() if isinstance(data, bytes) and p.search(data))
    if not offers & need:
        return {}
    found = _INDEX.get(key)
    if found is not None or key in _INDEX:
        return found or {}
    _INDEX[key] = None  # an import cycle meets an empty index, not a recursion
    data = data if data is not None else read_bytes(path)
    source = decode(path, data) if isinstance(data, bytes) else data
    if not hasattr(source, "text"):
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(source.text, path)
        found = EventScan(source.text, tree).index()
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return {}
    _INDEX[key] = found
    return found
