"""ZG004 accumulation-defeated: a zero runs every micro-batch while the step runs every k."""
from __future__ import annotations

from typing import Iterator

from zgcheck.diagnostics import Diagnostic
from zgcheck.loops import SYNC_CONDITION
from zgcheck.ordering import accumulation_condition, zero_effect
from zgcheck.reach import ReachFinder, related
from zgcheck.events import Ev
from zgcheck.rules.base import Rule, RuleContext, cite, reported_by_helper, conditions_within, guarded_in, innermost_loop, inside, occurrence

EXPLANATION = """\
What it does
  Finds a zero that runs on every iteration of a loop whose step() of the same
  optimizer runs only on some iterations (gradient accumulation: `if (i + 1) % k == 0`,
  `accelerator.sync_gradients`, `if (i + 1) % k: continue` before the step, a test kept
  in a name such as `should_step = step % k == 0`), so the zero wipes the micro-batches
  accumulated in the iterations that skipped the step. Also `model.zero_grad()` inside
  `accelerator.accumulate(...)`: Accelerate skips a prepared optimizer's zero_grad()
  while accumulating, but not the model's. Also inside a per-batch function
  (Lightning's `training_step` with manual optimization, `train_step(batch,
  batch_idx)`, an ignite process function): the message then says the zero "runs on
  every call" of it. A zero on every iteration of a dry-run mode that never steps is
  not reported: nothing is lost before a step that never comes. Nor is a zero inside
  an inner loop (an adversarial attack) when the optimizer is zeroed again after that
  loop, before its step, nor one whose skipped iterations run only backwards that surely
  do not reach the optimizer's network (a GAN discriminator's loss on `fake.detach()`).
  When the step's own backward runs under the step's condition (a generator trained
  every k calls), a backward outside it is reported only if it is seen to reach the
  optimizer's parameters.

Why it hurts training
  Only the last micro-batch before each step contributes: the effective batch is k
  times smaller than configured, the loss is scaled by 1/k for nothing, and training
  is noisier and slower. Nothing errors.

Bad
  for i, (x, y) in enumerate(loader):
      optimizer.zero_grad()                    # ZG004: runs every micro-batch
      (loss_fn(model(x), y) / k).backward()
      if (i + 1) % k == 0:
          optimizer.step()

Good
  for i, (x, y) in enumerate(loader):
      (loss_fn(model(x), y) / k).backward()
      if (i + 1) % k == 0:
          optimizer.step()
          optimizer.zero_grad()

How the fix works
  The zero is moved under the step's condition, right after the step. The fix is
  safe when the zero and the conditional step are in the same loop body and the zero
  is a plain statement there; otherwise it is unsafe.
"""


def check(ctx: RuleContext) -> Iterator[Diagnostic]:
    reach: ReachFinder | None = None
    for ordering in ctx.optimizer_orderings():
        region, key = ordering.region, ordering.key
        steps = [o for o in region.occurrences if o.event.kind == "step" and o.event.opt == key]
        for zero_id, bw_id in sorted(ordering.carried_wipes):
            zero = occurrence(region, zero_id)
            loop = innermost_loop(zero)
            if loop is None:
                continue
            backwards = [o for o in region.occurrences if o.event.kind == "backward" and inside(o, loop)]
            step, cond = _accumulating_step(zero, steps, loop, backwards, region.modes)
            backward = region.events.get(bw_id) if bw_id else None
            if reported_by_helper(region, (zero.event, backward), loop):
                continue
            if backward is not None:
                reach = reach or ReachFinder(ctx.parsed, ctx.facts, criteria_hold_nothing=True)
                if _never_reaches(reach, backward, key):
                    continue  # a GAN's discriminator loss on `fake.detach()`: nothing carried
            if step is None:
                step = _step_after_inner_loop(zero, steps, loop, region.occurrences)
                if step is None or _zeroed_again_before(step, loop, zero, region, ctx):
                    continue
                message = (
                    f"{cite(zero.event)} runs on every iteration of the loop (line {region.loops[loop].line}), "
                    f"but {cite(step.event)} runs only once after it: it wipes the gradients that "
                    f"{cite(backward)} accumulated in the earlier iterations"
                )
            else:
                # The step's own backward runs under its condition (a GAN generator trained
                # every k calls): a backward outside it is another network's, unless it is
                # seen to reach this optimizer's parameters (BasicSR's discriminator phase).
                own = [b for b in backwards if ("if", cond) in b.path]
                carried = occurrence(region, bw_id) if bw_id else None
                if own and carried is not None and ("if", cond) not in carried.path:
                    reach = reach or ReachFinder(ctx.parsed, ctx.facts, criteria_hold_nothing=True)
                    if key not in reach.optimizers(carried.event, [key]):
                        continue
                every = f"on every call of {region.name}()" if region.loops[loop].virtual else "on every iteration"
                written = region.shown.get(cond, cond)
                when = every if not guarded_in(zero, loop) else f"when `{written}` but before the backward"
                message = (
                    f"{cite(zero.event)} runs {when}, but {cite(step.event)} runs only when "
                    f"`{written}`: it wipes the gradients that {cite(backward)} accumulated in the "
                    f"iterations that skipped the step"
                )
            fix = None if cond == SYNC_CONDITION or step.event.via else ctx.fixes.move_zero_after_step(zero.event, step.event, safe_when_same_block=False)
            yield ctx.diagnostic("ZG004", zero.event, message, key, (zero.event, backward, step.event), fix=fix)


def _never_reaches(reach: ReachFinder, backward, key: str) -> bool:
    """Does the backward surely write nothing into ``key``'s parameters: everything its loss
    runs through is known, and none of it is a module ``key`` optimizes?"""
    found = reach.of(backward)
    owners = reach.owners(key)
    return found.complete and bool(found.modules) and bool(owners) and not any(
        related(m, o) for m in found.modules for o in owners)


def _zeroed_again_before(step: Ev, loop: int, zero: Ev, region, ctx: RuleContext) -> bool:
    """Is the optimizer zeroed again after the inner loop, before that step (an
    adversarial attack's inner loop, then `opt.zero_grad()` and the training backward)?
    Then nothing the inner loop accumulated was meant for the step."""
    key = zero.event.opt or ""
    for occ in region.occurrences:
        if occ.event.kind != "zero" or occ is zero or inside(occ, loop):
            continue
        if zero.event.line < occ.event.line < step.event.line and zero_effect(occ.event, key, ctx.facts) == "full":
            return True
    return False


def _step_after_inner_loop(zero: Ev, steps: list[Ev], loop: int, occurrences: tuple[Ev, ...]) -> Ev | None:
    """A micro-batch loop that zeroes on every iteration while the step runs once after
    it, in an enclosing loop or after the loop in the same function. After it in the
    order events run (not by line: a method inlined before the loop has the same lines as
    its copy inside it)."""
    if guarded_in(zero, loop):
        return None
    outer = [value for kind, value in zero.path if kind == "loop" and value != loop]
    position = {id(o): i for i, o in enumerate(occurrences)}
    last = max((i for i, o in enumerate(occurrences) if inside(o, loop)), default=-1)
    for step in steps:
        step_loops = [value for kind, value in step.path if kind == "loop"]
        if loop not in step_loops and step_loops == outer[: len(step_loops)] and position.get(id(step), -1) > last:
            return step
    return None


def _accumulating_step(zero: Ev, steps: list[Ev], loop: int, backwards: list[Ev],
                       modes: dict[str, str]) -> tuple[Ev | None, str | None]:
    """A step of the zero's loop under an accumulation condition that the zero does not
    share, or shares entirely while the backward runs outside it (then the zero sits before
    the micro-batches it should keep). A zero under some other condition is assumed aligned
    with the step by its author; a backward under the step's own condition (a GAN's or an
    RL agent's delayed update) accumulates nothing across iterations."""
    for step in steps:
        cond = accumulation_condition(step, loop, modes) if innermost_loop(step) == loop else None
        if not cond:
            continue
        if not guarded_in(zero, loop):
            return step, cond
        shared = conditions_within(zero, step, loop) and cond != SYNC_CONDITION
        if shared and not any(("if", cond) in b.path for b in backwards):
            return step, cond
    return None, None


RULE = Rule(
    code="ZG004",
    name="accumulation-defeated",
    summary="zero_grad() runs every micro-batch while step() runs every k: accumulation is defeated",
    explanation=EXPLANATION,
    check=check,
    yields_to=("ZG002",),
)
