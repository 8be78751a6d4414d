"""The leak analysis behind ZG007: gradients one optimizer's loss leaves in another's.

A backward *belongs to* the optimizers of the first burst of steps after it (steps with no
backward between them; GUIDE section 1). For one optimizer X, every contribution a
backward surely makes to X's parameters (:mod:`zgcheck.reach`, minus frozen modules) is
followed along each path of the region's control flow:

* ``pending``  nothing has stepped since the backward;
* ``claimed``  another optimizer Y that the backward reaches stepped (the burst is open:
  if X steps before the next backward, X belongs to the burst too — a joint loss);
* ``foreign``  a backward came after Y's step: the burst closed without X.

A zero of X discards every contribution (wiping a foreign one is correct). X's step
applying a foreign contribution is a leak. The fixpoint machinery (conditions, loops,
helpers, try) is the one of :class:`zgcheck.ordering.Interpreter`; this module only adds
its own token fields and transfer functions.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from zgcheck.events import Ev, Event, Loop, Region, walk
from zgcheck.freezing import ALL, FREEZE_KINDS
from zgcheck.ordering import MANUAL_PREFIX, Flow, Interpreter, Token, evolve, optimizer_keys, zero_effect
from zgcheck.reach import ReachFinder, related
from zgcheck.recognize import ModuleFacts

ANCHOR_KINDS = frozenset({"backward", "step", "zero"}) | FREEZE_KINDS


@dataclass(frozen=True)
class Contribution:
    backward: int
    state: str  # "pending" | "claimed" | "foreign"
    claimed_by: int | None  # the other optimizer's step
    reaches: frozenset[str]  # optimizers the backward surely writes into
    closed_by: int | None = None  # the first backward after that step: the burst ended there


@dataclass(frozen=True)
class LeakToken(Token):
    contribs: frozenset = frozenset()
    last_zero: int | None = None  # X's last zero on this path
    frozen: frozenset = frozenset()  # ("module", key) | ("toggle", optimizer) | ("all", None)
    was_frozen: frozenset = frozenset()  # frozen at some point since the last backward


@dataclass(frozen=True)
class Leak:
    """X's ``step`` applies what ``backward`` left after ``other_step`` (Y) used it."""

    step: int
    backward: int
    other_step: int
    zero: int | None  # X's zero that ran before the backward (too early), if any
    closer: int  # the first backward after other_step on this path: X's zero belongs before it


class LeakInterpreter(Interpreter):
    def __init__(self, region: Region, key: str, facts: ModuleFacts, reach: ReachFinder, keys: list[str]) -> None:
        super().__init__(region, key, facts)
        self.reach = reach
        self.keys = keys
        self.leaks: set[Leak] = set()

    def find(self) -> set[Leak]:
        self.run(self.region.body, {LeakToken()})
        return self.leaks

    # Loops that hold gradient events run at least once (GUIDE, "Conditions and loops"):
    # the path that skips such a loop would keep contributions its zero clears.
    def run_loop(self, node: Loop, tokens: set) -> Flow:
        if node.virtual or node.infinite or not _holds_events(node):
            return super().run_loop(node, tokens)
        first = self.run(node.body, tokens)
        entered = {self.back_edge(t) for t in first.normal | first.continues}
        result = super().run_loop(node, entered) if entered else Flow()
        result.normal |= {self.loop_exit(t) for t in first.breaks}
        result.returns |= first.returns
        return result

    def transfer(self, event: Event, token: LeakToken) -> LeakToken:
        kind = event.kind
        if kind in FREEZE_KINDS:
            return self.freeze(event, token)
        if kind == "backward":
            return self.backward(event, token)
        if kind == "zero":
            effect = zero_effect(event, self.key, self.facts) or ("maybe" if self.overlaps(event) else None)
            if effect is None:
                return token
            return evolve(token, contribs=frozenset(), last_zero=event.id if effect == "full" else token.last_zero)
        if kind == "step" and event.opt is not None:
            return self.step_of(event, token)
        return token

    def backward(self, event: Event, token: LeakToken) -> LeakToken:
        reached = self.reached(event, token.frozen | token.was_frozen)
        contribs = {replace(c, state="foreign", closed_by=event.id) if c.state == "claimed" else c for c in token.contribs}
        if self.key in reached:
            contribs.add(Contribution(event.id, "pending", None, reached))
        return evolve(token, contribs=frozenset(contribs), was_frozen=token.frozen)

    def step_of(self, event: Event, token: LeakToken) -> LeakToken:
        if event.opt == self.key or self.facts.is_uncertain(event.opt):
            if event.opt == self.key:
                for c in token.contribs:
                    if c.state == "foreign" and c.claimed_by is not None and c.closed_by is not None:
                        self.leaks.add(Leak(event.id, c.backward, c.claimed_by, token.last_zero, c.closed_by))
            return evolve(token, contribs=frozenset())
        contribs = {
            replace(c, state="claimed", claimed_by=event.id) if c.state == "pending" and event.opt in c.reaches else c
            for c in token.contribs
        }
        return evolve(token, contribs=frozenset(contribs))

    def freeze(self, event: Event, token: LeakToken) -> LeakToken:
        frozen = set(token.frozen)
        if event.kind == "toggle":
            frozen.add(("toggle", event.opt) if event.opt else ("all", None))
        elif event.kind == "untoggle":
            frozen = {f for f in frozen if f[0] != "toggle"}
        else:
            items = {("all", None) if m == ALL else ("module", m) for m in event.models} or {("all", None)}
            if event.kind == "freeze":
                frozen |= items
            else:
                gone = {m for m in event.models}
                frozen = {f for f in frozen if not (f[0] == "module" and any(related(f[1], m) for m in gone))}
                if ALL in gone:
                    frozen = {f for f in frozen if f[0] == "toggle"}
        new = frozenset(frozen)
        return evolve(token, frozen=new, was_frozen=token.was_frozen | new)

    def overlaps(self, zero: Event) -> bool:
        """A zero of another optimizer, or of a submodule, that shares parameters with ours
        (infoGAN's `info_optimizer` over G and D): it clears part of what we hold, so no
        leak is claimed across it."""
        mine = self.reach.owners(self.key) or frozenset()
        if zero.opt is not None:
            theirs = self.reach.owners(zero.opt)
            return theirs is None or any(related(a, b) for a in theirs for b in mine)
        return any(related(m, o) for m in zero.models for o in mine)

    def reached(self, event: Event, frozen: frozenset) -> frozenset[str]:
        base = self.reach.optimizers(event, self.keys)
        return frozenset(k for k in base if not self.is_frozen(k, frozen))

    def is_frozen(self, key: str, frozen: frozenset) -> bool:
        """May ``key``'s parameters be frozen? (then no leak is claimed through them)"""
        for kind, value in frozen:
            if kind == "all":
                return True
            if kind == "toggle" and self.facts.canon(value) != self.facts.canon(key):
                return True
            if kind == "module":
                owners = self.reach.owners(key)
                if owners is None or any(related(value, o) for o in owners):
                    return True
        return False


def _holds_events(loop: Loop) -> bool:
    return any(isinstance(n, Ev) and n.event.kind in ANCHOR_KINDS for n in walk(loop.body))


def find_leaks(region: Region, facts: ModuleFacts, reach: ReachFinder) -> dict[str, set[Leak]]:
    """ZG007 leaks per optimizer key of ``region`` (only regions stepping two or more)."""
    keys = [k for k in optimizer_keys(region) if not k.startswith(MANUAL_PREFIX)]
    backwards = [e for e in region.events.values() if e.kind == "backward"]
    if len(keys) < 2 or not backwards:
        return {}
    reached = [reach.optimizers(b, keys) for b in backwards]
    found: dict[str, set[Leak]] = {}
    for key in keys:
        # X can only be leaked into by a backward that reaches X and another optimizer.
        if not any(key in r and len(r) > 1 for r in reached):
            continue
        leaks = LeakInterpreter(region, key, facts, reach, keys).find()
        if leaks:
            found[key] = leaks
    return found
