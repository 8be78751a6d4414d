"""What every rule shares: the Rule record, the context handed to checks, message helpers."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Iterator

from zgcheck.diagnostics import Diagnostic, Fix, Location, RelatedEvent
from zgcheck.fixes import SAFE, UNSAFE, FixPlanner
from zgcheck.parsing import ParsedModule
from zgcheck.conditions import ITERATION, SWITCH
from zgcheck.loops import SYNC_CONDITION
from zgcheck.events import Ev, Event, Region
from zgcheck.ordering import MANUAL_PREFIX, Ordering, zero_effect
from zgcheck.recognize import ModuleFacts

DOCS_URL = "https://github.com/zgcheck/zgcheck/blob/main/docs/rules.md#{code}"


@dataclass(frozen=True)
class Rule:
    """A rule is data (code, name, texts) plus one check function."""

    code: str
    name: str
    summary: str
    explanation: str
    check: Callable[["RuleContext"], Iterable[Diagnostic]] = field(repr=False, compare=False)
    fix_safety: str = ""
    # Codes that, reported at the same place, already say what this rule would: this
    # rule's finding there is left out (a zero between backward and a step every k
    # micro-batches is ZG002 first).
    yields_to: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return DOCS_URL.format(code=self.code.lower())


@dataclass
class RuleContext:
    filename: str
    facts: ModuleFacts
    regions: list[Region]
    orderings: list[Ordering]
    parsed: ParsedModule | None = None
    _planner: FixPlanner | None = None

    @property
    def fixes(self) -> FixPlanner:
        """The fix planner, built on first use (only files with findings pay for it)."""
        if self._planner is None:
            self._planner = FixPlanner(self.parsed, set(self.facts.optimizers))
        return self._planner

    def diagnostic(self, code: str, event: Event, message: str, key: str, related: Iterable[Event] = (),
                   fix: Fix | None = None) -> Diagnostic:
        related = tuple(related)
        if fix is not None and fix.applicability == SAFE and any(e is not None and e.unresolved for e in (event, *related)):
            # An event read from a call we could not see into (its name only): not certain.
            fix = replace(fix, applicability=UNSAFE)
        return Diagnostic(
            code=code,
            message=message,
            filename=self.filename,
            location=Location(event.line, event.column),
            end_location=Location(event.end_line, event.end_column),
            optimizer=key,
            related=tuple(RelatedEvent(e.kind, e.line) for e in related if e is not None),
            fix=fix,
        )

    def optimizer_orderings(self) -> Iterator[Ordering]:
        return (o for o in self.orderings if not o.key.startswith(MANUAL_PREFIX))

    def manual_orderings(self) -> Iterator[Ordering]:
        return (o for o in self.orderings if o.key.startswith(MANUAL_PREFIX))


def reported_by_helper(region: Region, events, loop: int | None = None) -> bool:
    """Is this finding wholly inside a helper of another module (ARCHITECTURE.md,
    "Project-wide resolution")? Then that module's own check reports it, and the caller
    stays silent: every event happens in the helper, and so does the loop, if any."""
    inside_helper = all(e.via for e in events if e is not None)
    return inside_helper and (loop is None or bool(region.loops[loop].via))


def occurrence(region: Region, event_id: int) -> Ev:
    return next(o for o in region.occurrences if o.event.id == event_id)


def innermost_loop(occ: Ev) -> int | None:
    loops = [value for kind, value in occ.path if kind == "loop"]
    return loops[-1] if loops else None


def inside(occ: Ev, loop_id: int | None) -> bool:
    return loop_id is not None and ("loop", loop_id) in occ.path


def guarded_in(occ: Ev, loop_id: int) -> bool:
    """True when ``occ`` sits under an ``if`` or an inner loop of loop ``loop_id``."""
    index = occ.path.index(("loop", loop_id))
    return index < len(occ.path) - 1


def conditions_after(occ: Ev, loop_id: int) -> list[object]:
    """The `if`s (and inner loops) between loop ``loop_id`` and ``occ``."""
    index = occ.path.index(("loop", loop_id))
    return list(occ.path[index + 1 :])


def conditions_within(zero: Ev, step: Ev, loop_id: int) -> bool:
    """The zero is guarded only by conditions the step shares: whenever the step runs, so
    does the zero, and the dataflow (which correlates equal conditions) is exact. Other
    guards are assumed aligned with the step by the code's author."""
    guards = conditions_after(zero, loop_id)
    return all(item[0] != "loop" for item in guards) and set(guards) <= set(conditions_after(step, loop_id))


def assumed_aligned(zero: Ev, step: Ev, loop_id: int, modes: dict[str, str]) -> bool:
    """The condition model's leniency (ARCHITECTURE.md): a zero guarded by conditions the
    step does not share is assumed to be aligned with the step by its author (window start
    / window end accumulation), unless the dataflow is exact for it. It is exact when the
    zero's own guards are mode switches (each run takes one branch: analysed as such), and
    it is not assumed when those guards change per iteration while the step runs on every
    iteration (`if batch_idx % 8 == 0: zero_grad()` with an unguarded step: ZG001)."""
    own = set(conditions_after(zero, loop_id)) - set(conditions_after(step, loop_id))
    own = {item for item in own if item[0] == "loop" or modes.get(str(item[1])) != SWITCH}
    if not own:
        return False
    if any(item[0] == "loop" for item in own) or ("if", SYNC_CONDITION) in conditions_after(zero, loop_id):
        return True  # inner loops, and Accelerate's own skipping of a prepared zero_grad()
    step_own = set(conditions_after(step, loop_id)) - set(conditions_after(zero, loop_id))
    step_varies = any(item[0] == "loop" or modes.get(str(item[1])) != SWITCH for item in step_own)
    return step_varies or not all(modes.get(str(item[1])) == ITERATION for item in own)


def zeros_of(region: Region, key: str, facts: ModuleFacts, weak: bool = True) -> list[Ev]:
    """Zeros that may clear ``key``; ``weak=False`` leaves out (re)constructions."""
    return [
        o for o in region.occurrences
        if zero_effect(o.event, key, facts) is not None and (weak or not o.event.weak)
    ]


def loops_of(occ: Ev) -> set[object]:
    return {value for kind, value in occ.path if kind == "loop"}


def zeros_before_loop(zeros: list[Ev], step: Ev, loop: int) -> list[Ev]:
    """Zeros outside ``loop`` that can run before it: in no loop, or in loops that enclose
    the stepping loop. A zero in some other loop (another helper, another branch) cannot."""
    enclosing = loops_of(step)
    return [z for z in zeros if not inside(z, loop) and loops_of(z) <= enclosing]


def steps_in_loop(region: Region, key: str, loop: int) -> list[Event]:
    """Every step of ``key`` inside loop ``loop``, in source order."""
    steps = [o.event for o in region.occurrences if o.event.kind == "step" and o.event.opt == key and inside(o, loop)]
    return sorted({e.id: e for e in steps}.values(), key=lambda e: (e.line, e.column))


def shown(key: str, *events: Event | None) -> str:
    """The optimizer as the code names it at the event (`self.optimizer`), not the alias
    root the analysis keys it by (a constructor parameter `optim`)."""
    return next((e.target for e in events if e is not None and e.target), key)


def cite(event: Event | None) -> str:
    """``optimizer.step() (line 16)``: how a message names an event."""
    if event is None:
        return "a backward pass"
    text = event.text if len(event.text) <= 60 else event.text[:57] + "..."
    return f"{text} (line {event.line})"


def stale_findings(ctx: RuleContext, ordering: Ordering) -> Iterator[tuple[Ev, Event | None, Event | None, int | None, list[Ev]]]:
    """Steps that can see already-consumed gradients, unless a conditional zero in the
    same loop may be aligned with the step by its author (then we stay silent)."""
    region = ordering.region
    zeros = zeros_of(region, ordering.key, ctx.facts)
    for step_id, by_id, bw_id in sorted(ordering.stale):
        step = occurrence(region, step_id)
        loop = innermost_loop(step)
        if loop is None:
            continue
        in_loop = [z for z in zeros if inside(z, loop)]
        if any(assumed_aligned(z, step, loop, region.modes) for z in in_loop):
            continue
        if reported_by_helper(region, (step.event, region.events.get(bw_id) if bw_id else None), loop):
            continue
        yield step, region.events.get(by_id), region.events.get(bw_id) if bw_id else None, loop, in_loop
