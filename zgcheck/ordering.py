"""The ordering analysis: a fixpoint over each region's cyclic control flow, per optimizer.

For one optimizer, each path through a region carries a token saying what its
parameters' ``.grad`` may hold (ARCHITECTURE.md, "Gradient-state model"):

* ``fresh``   contributions of this iteration not yet consumed by a step,
* ``carried`` fresh contributions that crossed the loop's back edge (accumulation),
* ``stale_by`` the step that already consumed what is still there,
* ``wiped``   a zero that destroyed fresh contributions, and no backward since.

Conditions follow the condition model (ARCHITECTURE.md, :mod:`zgcheck.conditions`): two
``if`` with the same text take the same branch within one iteration (``env``), and a mode
switch takes the same branch in every iteration of the region. Loops are iterated until no
new token appears; a loop whose body holds a backward or a step runs at least once.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from zgcheck.events import Ev, Event, If, Inline, Jump, Loop, Node, Region, Seq, Try, walk
from zgcheck.conditions import ITERATION, SWITCH, is_accumulation_condition
from zgcheck.recognize import ModuleFacts

MANUAL_PREFIX = "<manual:"
MAX_TOKENS = 4096  # beyond this, condition correlations are forgotten to stay fast
# Token-steps one region may take (a trainer's fit() with dozens of mode switches inlined
# can otherwise run for minutes). Over budget, the region is analysed again remembering
# only its mode switches; over budget again, it is left silent.
WORK_BUDGET = 400_000


class OverBudget(Exception):
    pass


def evolve(token, **changes):
    """``dataclasses.replace`` for the analysis' frozen tokens, without its per-field
    checks: the fixpoint makes hundreds of thousands of them on a trainer's loop."""
    new = object.__new__(token.__class__)
    state = new.__dict__
    state.update(token.__dict__)
    state.pop("_hash", None)
    state.update(changes)
    return new


def manual_key(base: str) -> str:
    return f"{MANUAL_PREFIX}{base}>"


@dataclass(frozen=True)
class Token:
    fresh: bool = False
    carried: bool = False
    stale_by: int | None = None
    wiped: tuple[int, int | None] | None = None
    bw: int | None = None
    env: frozenset = frozenset()
    skipped: bool = False  # this iteration took the branch of an accumulation `if` without the step
    lost: tuple[int, int | None] | None = None  # a zero wiped carried micro-batches; a later step confirms ZG004
    # The zero in ``wiped`` cleared only gradients carried from an iteration whose step was
    # skipped (none of its own iteration).
    wiped_carried: bool = False

    def __hash__(self) -> int:
        # Computed once per token (tokens live in sets and memo keys, hashed again and again).
        # (The fields are the instance's dict, in field order: `evolve` keeps the order.)
        state = self.__dict__
        found = state.get("_hash")
        if found is None:
            found = state["_hash"] = hash(tuple(state.values()))
        return found


@dataclass
class Flow:
    normal: set = field(default_factory=set)
    breaks: set = field(default_factory=set)
    continues: set = field(default_factory=set)
    returns: set = field(default_factory=set)

    def merge(self, other: "Flow") -> None:
        self.normal |= other.normal
        self.breaks |= other.breaks
        self.continues |= other.continues
        self.returns |= other.returns


@dataclass(frozen=True)
class Ordering:
    """What the fixpoint found for one optimizer in one region."""

    region: Region
    key: str
    wiped: frozenset  # (zero_id, backward_id, step_id): ZG002
    stale: frozenset  # (step_id, consumed_by_step_id, backward_id): ZG001 / ZG003 / ZG006
    carried_wipes: frozenset  # (zero_id, backward_id): candidates for ZG004


def zero_effect(event: Event, key: str, facts: ModuleFacts) -> str | None:
    """How a zero event clears ``key``'s gradients: "full", "maybe" or not at all (None).
    A weak zero (an optimizer rebuilt, a gradient replaced by another) is "maybe" at most."""
    if event.kind != "zero":
        return None
    effect = _zero_effect(event, key, facts)
    return "maybe" if effect == "full" and event.weak else effect


def _zero_effect(event: Event, key: str, facts: ModuleFacts) -> str | None:
    if key.startswith(MANUAL_PREFIX):
        base = key[len(MANUAL_PREFIX):-1]
        if event.grad_base == base:
            return "full"
        if base.startswith("[") and event.grad_base in base[1:-1].split(","):
            return "maybe"  # one of the tensors a caller listed (`sgd([w, b])`, `w.grad.zero_()`)
        return "maybe" if (event.models or event.opt or event.unknown) else None
    if event.opt is not None:
        if event.opt == key or key.startswith(event.opt + "["):  # (every part of a multi-optimizer)
            return "maybe" if event.weak else "full"
        return "maybe" if facts.is_uncertain(key) or facts.is_uncertain(event.opt) else None
    if event.unknown:
        return "maybe"
    if event.models:
        owners = facts.owners_of(key)
        if owners is None:
            return "maybe"
        canon_owners = {facts.canon(o) for o in owners} | set(owners)
        for model in event.models:
            if facts.canon(model) in canon_owners or model in canon_owners:
                return "full"
            if any(o.startswith(model + ".") for o in canon_owners):
                return "full"
        return None  # another model, or a submodule only (freezing / masking)
    return None


class Interpreter:
    """Abstract interpretation of one region for one optimizer key."""

    def __init__(self, region: Region, key: str, facts: ModuleFacts) -> None:
        self.region = region
        self.key = key
        self.facts = facts
        self.wiped: set = set()
        self.stale: set = set()
        self.carried_wipes: set = set()
        self.work = 0
        self._kinds_in: dict[tuple[int, str], bool] = {}  # (branch, event kind) -> held
        # Only conditions tested by two or more `if`s need remembering along a path.
        # A mode switch is remembered even when one `if` tests it: the loop tests it again.
        seen: dict[str, int] = {}
        self._holds: dict[int, bool] = {}
        self._back: dict[Token, Token] = {}
        self.switches: set[str] = set()
        for node in walk(region.body):
            if isinstance(node, If):
                seen[node.cond] = seen.get(node.cond, 0) + 1
                if node.mode == SWITCH and region.modes.get(node.cond, SWITCH) == SWITCH:
                    self.switches.add(node.cond)
        self.correlated = {cond for cond, count in seen.items() if count > 1} | self.switches

    def analyse(self) -> Ordering:
        for remember_conditions in (True, False):
            if not remember_conditions:
                # Mode switches stay remembered: forgetting them joins paths that never
                # meet in one run (AMP and fp32 branches), and reports what cannot happen.
                self.correlated = set(self.switches)  # (back edges depend on the switches only)
            self.work = 0
            self.wiped, self.stale, self.carried_wipes = set(), set(), set()
            try:
                self.run(self.region.body, {Token()})
                break
            except OverBudget:
                continue
        else:
            self.wiped, self.stale, self.carried_wipes = set(), set(), set()
        return Ordering(self.region, self.key, frozenset(self.wiped), frozenset(self.stale), frozenset(self.carried_wipes))

    def run(self, node: Node, tokens: set) -> Flow:
        if not tokens:
            return Flow()
        self.work += len(tokens)
        if self.work > WORK_BUDGET:
            raise OverBudget
        if isinstance(node, Seq):
            return self.run_seq(node, tokens)
        if isinstance(node, Ev):
            return Flow(normal={self.transfer(node.event, t) for t in tokens})
        if isinstance(node, If):
            return self.run_if(node, tokens)
        if isinstance(node, Loop):
            return self.run_loop(node, tokens)
        if isinstance(node, Try):
            return self.run_try(node, tokens)
        if isinstance(node, Inline):
            inner = self.run(node.body, tokens)
            return Flow(normal=inner.normal | inner.returns)
        if isinstance(node, Jump):
            return self.run_jump(node, tokens)
        return Flow(normal=set(tokens))

    def run_seq(self, node: Seq, tokens: set) -> Flow:
        result = Flow()
        current = set(tokens)
        for item in node.items:
            step = self.run(item, current)
            result.breaks |= step.breaks
            result.continues |= step.continues
            result.returns |= step.returns
            current = step.normal
            if not current:
                break
        result.normal = current
        return result

    def run_jump(self, node: Jump, tokens: set) -> Flow:
        if node.kind == "break":
            return Flow(breaks=set(tokens))
        if node.kind == "continue":
            return Flow(continues=set(tokens))
        if node.kind == "return":
            return Flow(returns=set(tokens))
        return Flow()  # raise: this path ends here

    def run_if(self, node: If, tokens: set) -> Flow:
        then_in, else_in = set(), set()
        if node.cond not in self.correlated:
            then_in, else_in = set(tokens), set(tokens)
        for token in tokens if node.cond in self.correlated else ():
            known = dict(token.env).get(node.cond)
            if known is None:
                then_in.add(evolve(token, env=token.env | {(node.cond, True)}))
                else_in.add(evolve(token, env=token.env | {(node.cond, False)}))
            elif known:
                then_in.add(token)
            else:
                else_in.add(token)
        if node.mode != SWITCH:
            then_in, else_in = self.skip_backward(node.then, node.orelse, then_in), self.skip_backward(node.orelse, node.then, else_in)
        if node.accumulation:
            then_steps, else_steps = self.steps_in(node.then), self.steps_in(node.orelse)
            if else_steps and not then_steps:
                then_in = {evolve(t, skipped=True) for t in then_in}
            if then_steps and not else_steps:
                else_in = {evolve(t, skipped=True) for t in else_in}
        result = self.run(node.then, then_in)
        result.merge(self.run(node.orelse, else_in))
        return self.limit(result)

    def skip_backward(self, taken: Node, other: Node, tokens: set) -> set:
        """Tokens entering ``taken``, a branch without the backward its sibling runs. A wipe
        of gradients carried from an iteration whose step was skipped is forgotten there:
        the step would see it only on a path of two skips in a row (a backward whose step
        is skipped, then a step whose backward is skipped), which is how code skips the
        backward a helper already ran and the step of a warm-up, with the zero written
        before both. A zero between a backward and a step of one iteration stays."""
        if not any(t.wiped_carried for t in tokens) or self.backward_in(taken) or not self.backward_in(other):
            return tokens
        return {evolve(t, wiped=None, wiped_carried=False) if t.wiped_carried else t for t in tokens}

    def backward_in(self, node: Node) -> bool:
        """Does this branch run a backward?"""
        return self._contains(node, "backward", None)

    def steps_in(self, node: Node) -> bool:
        """Does this branch step our optimizer?"""
        return self._contains(node, "step", self.key)

    def _contains(self, node: Node, kind: str, opt: str | None) -> bool:
        """Does ``node`` hold an event of ``kind`` (of optimizer ``opt``, if given)? Cached:
        branches are walked once."""
        key = (id(node), kind)
        cached = self._kinds_in.get(key)
        if cached is None:
            cached = self._kinds_in[key] = any(
                isinstance(n, Ev) and n.event.kind == kind and (opt is None or n.event.opt == opt) for n in walk(node))
        return cached

    def run_loop(self, node: Loop, tokens: set) -> Flow:
        head = set(tokens)
        entered: set = set()  # tokens that went through the body at least once
        result = Flow()
        while True:
            body = self.run(node.body, head)
            back = body.normal | body.continues
            if node.virtual:
                back |= body.returns
            else:
                result.returns |= body.returns
            result.breaks |= body.breaks
            again = {self.back_edge(t) for t in back}
            entered |= again
            grown = head | again
            if len(grown) > MAX_TOKENS:
                grown, entered = self.shrink(grown), self.shrink(entered)
            if grown == head:
                break
            head = grown
        # A loop that holds a backward or a step runs: its zero-iteration path is not real.
        exits = entered if self.holds_events(node) else head
        if node.infinite or node.virtual:
            exits = set()
        after_else = self.run(node.orelse, exits)
        out = {self.loop_exit(t) for t in after_else.normal | result.breaks}
        return Flow(normal=out, returns=result.returns | after_else.returns)

    def run_try(self, node: Try, tokens: set) -> Flow:
        body = self.run(node.body, tokens)
        # An exception is assumed to come before the body did anything: inventing a raise
        # after every statement would report paths nobody takes.
        result = Flow(breaks=body.breaks, continues=body.continues, returns=body.returns)
        for handler in node.handlers:
            result.merge(self.run(handler, tokens))
        orelse = self.run(node.orelse, body.normal)
        result.merge(orelse)
        if node.final is None:
            return result
        final = Flow()
        for name in ("normal", "breaks", "continues", "returns"):
            through = self.run(node.final, getattr(result, name))
            getattr(final, name).update(through.normal)
            final.breaks |= through.breaks
            final.continues |= through.continues
            final.returns |= through.returns
        return final

    def holds_events(self, node: Loop) -> bool:
        cached = self._holds.get(node.id)
        if cached is None:
            kinds = ("backward", "step")
            cached = any(isinstance(n, Ev) and n.event.kind in kinds for n in walk(node.body))
            self._holds[node.id] = cached
        return cached

    def limit(self, flow: Flow) -> Flow:
        if len(flow.normal) > MAX_TOKENS:
            flow.normal = self.shrink(flow.normal)
        return flow

    def forget(self, token: Token, everything: bool = False) -> Token:
        """Drop per-iteration correlations (to stay fast); mode switches are kept."""
        if everything or not token.env:
            return evolve(token, env=frozenset()) if token.env else token
        return evolve(token, env=frozenset(item for item in token.env if item[0] in self.switches))

    def shrink(self, tokens: set) -> set:
        tokens = {self.forget(t) for t in tokens}
        return tokens if len(tokens) <= MAX_TOKENS else {self.forget(t, everything=True) for t in tokens}

    def back_edge(self, token: Token) -> Token:
        # Memoised: a loop's fixpoint sends the same tokens across its back edge again and
        # again (a trainer's loop with many branches: tens of thousands of times).
        found = self._back.get(token)
        if found is None:
            found = self._back[token] = evolve(self.forget(token), fresh=False, carried=token.carried or token.fresh,
                                                skipped=False)
        return found

    @staticmethod
    def loop_exit(token: Token) -> Token:
        # Once a loop is left, what it accumulated belongs to the enclosing iteration.
        return evolve(token, fresh=token.fresh or token.carried, carried=False)

    # ----- transfer functions ----------------------------------------------------
    def transfer(self, event: Event, token: Token) -> Token:
        kind = event.kind
        if kind == "backward":
            return evolve(token, fresh=True, wiped=None, wiped_carried=False, bw=event.id)
        if kind == "zero":
            return self.zero(event, token)
        if kind == "step" and event.opt == self.key:
            return self.step(event, token)
        if kind == "manual" and self.key.startswith(MANUAL_PREFIX) and manual_key(event.grad_base or "") == self.key:
            return self.step(event, token)
        return token

    def zero(self, event: Event, token: Token) -> Token:
        effect = zero_effect(event, self.key, self.facts)
        if effect is None:
            return token
        wiped = token.wiped if effect == "full" else None  # a second zero keeps the first one's loss
        wiped_carried = token.wiped_carried and wiped is not None
        if effect == "full":
            if token.fresh or token.carried:
                # Carried gradients wiped with no backward before the next step are lost
                # too (`zero; step; backward` rotated): the step will see nothing.
                wiped, wiped_carried = (event.id, token.bw), token.carried and not token.fresh
            if token.carried or (token.fresh and token.skipped):
                # Only a step of the same run makes the loss real: in a dry-run mode that
                # never steps, discarding the gradients is the point.
                return evolve(token, fresh=False, carried=False, stale_by=None, wiped=wiped,
                               wiped_carried=wiped_carried, lost=token.lost or (event.id, token.bw))
        return evolve(token, fresh=False, carried=False, stale_by=None, wiped=wiped, wiped_carried=wiped_carried)

    def step(self, event: Event, token: Token) -> Token:
        if token.lost is not None:
            self.carried_wipes.add(token.lost)
            token = evolve(token, lost=None)
        if token.wiped is not None:
            self.wiped.add((token.wiped[0], token.wiped[1], event.id))
        if token.stale_by is not None:
            self.stale.add((event.id, token.stale_by, token.bw))
        if token.fresh or token.carried:
            return evolve(token, fresh=False, carried=False, stale_by=event.id, wiped=None, wiped_carried=False)
        return evolve(token, wiped=None, wiped_carried=False)


def optimizer_keys(region: Region) -> list[str]:
    keys: list[str] = []
    for event in region.events.values():
        key = event.opt if event.kind == "step" else manual_key(event.grad_base or "") if event.kind == "manual" else None
        if key and key not in keys:
            keys.append(key)
    return keys


def analyse_region(region: Region, facts: ModuleFacts) -> list[Ordering]:
    """Run the fixpoint for every optimizer stepped in ``region`` (only if it has a backward)."""
    kinds = region.kinds()
    if "backward" not in kinds or not ({"step", "manual"} & kinds):
        return []
    return [Interpreter(region, key, facts).analyse() for key in optimizer_keys(region)]


def accumulation_condition(occ: Ev, loop_id: int, modes: dict[str, str]) -> str | None:
    """The per-iteration accumulation condition guarding ``occ`` inside loop ``loop_id``."""
    inside = False
    for kind, value in occ.path:
        if kind == "loop" and value == loop_id:
            inside = True
        elif inside and kind == "if" and is_accumulation_condition(str(value)) and modes.get(str(value)) == ITERATION:
            return str(value)
    return None
