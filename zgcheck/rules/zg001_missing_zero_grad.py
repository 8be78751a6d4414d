"""ZG001 missing-zero-grad: a step sees gradients an earlier step already consumed."""
from __future__ import annotations

from typing import Iterator

from zgcheck.conditions import SWITCH
from zgcheck.diagnostics import Diagnostic
from zgcheck.events import Ev
from zgcheck.rules.base import Rule, RuleContext, cite, conditions_after, inside, shown, stale_findings, steps_in_loop, zeros_before_loop, zeros_of
from zgcheck.rules.zg005_closure_missing_zero_grad import closure_missing_zero

EXPLANATION = """\
What it does
  Finds an optimizer whose step() can see gradients that an earlier step() already
  used, because nothing clears them in between.

Why it hurts training
  PyTorch adds every backward() into .grad. Without a reset once per optimizer step,
  the gradient of every earlier batch leaks into every later step: the effective
  learning rate grows without bound and the update direction drifts toward the
  first batches. Nothing errors; the loss just plateaus or diverges. A common cousin
  is `optimizer.zero_grad` written without parentheses: the method is referenced
  but never called.

  Also reported: a zero that runs under a condition that changes every iteration
  (`if batch_idx % 8 == 0`, a counter the loop updates) while backward and step run
  on every iteration (the message names the condition); the same inside a per-batch
  function (`training_step`, `train_step(batch, batch_idx)`), whose parameters change
  on every call; and a new optimizer built in every iteration over the parameters of a
  model built before the loop (a new optimizer object does not clear `.grad`).
  Not reported: a zero behind a mode switch the loop never changes (`if use_amp:`,
  `if args.fp16:`) whose other branch zeroes too, or a reset done by a helper, a
  trainer, an engine or a wrapper optimizer in another module of the project.

Bad
  for x, y in loader:
      loss = loss_fn(model(x), y)
      loss.backward()
      optimizer.step()          # ZG001: gradients of all earlier batches are still here

Good
  for x, y in loader:
      optimizer.zero_grad()
      loss = loss_fn(model(x), y)
      loss.backward()
      optimizer.step()

How the fix works
  `optimizer.zero_grad()` is inserted directly after `optimizer.step()`, in the same
  block, so it inherits the step's condition and keeps gradient accumulation correct.
  For `optimizer.zero_grad` without parentheses, the call parentheses are added.
  The fix is safe when the optimizer was built in the file (torch.optim, a factory,
  Lightning's self.optimizers()); it is unsafe when the optimizer is known only by
  its name.
"""


def check(ctx: RuleContext) -> Iterator[Diagnostic]:
    for ordering in ctx.optimizer_orderings():
        region, key = ordering.region, ordering.key
        for step, by, backward, loop, zeros_in_loop in stale_findings(ctx, ordering):
            outside = zeros_before_loop(zeros_of(region, key, ctx.facts, weak=False), step, loop)
            if not zeros_in_loop and outside:
                continue  # ZG003 names the zero that sits outside the loop
            if step.event.closure is not None and closure_missing_zero(ctx, step.event) is not None:
                continue  # ZG005 already reports this step
            ref = next((o for o in region.occurrences if o.event.kind == "zero_ref" and o.event.opt == key and inside(o, loop)), None)
            if ref is not None:
                message = (
                    f"{shown(key, ref.event)}.zero_grad (line {ref.event.line}) is referenced but never called (missing "
                    f"parentheses), so {cite(step.event)} keeps adding every earlier backward's gradients"
                )
                yield ctx.diagnostic("ZG001", ref.event, message, key, (ref.event, backward, step.event),
                                     fix=ctx.fixes.add_parens(ref.event))
                continue
            # A guarded zero explains a stale step only across iterations: a second step
            # right after another one in the same iteration is stale whatever the zero does.
            across = by is None or by.id == step.event.id
            guarded = _per_iteration_guard(zeros_in_loop, step, loop) if across else None
            if guarded is not None:
                zero, cond = guarded
                # A mode switch (a setting the loop never changes) holds for the whole run.
                other = "when it is false" if region.modes.get(cond) == SWITCH else "on the other iterations"
                message = (
                    f"{cite(zero.event)} runs only when `{region.shown.get(cond, cond)}`, but {cite(step.event)} runs on every "
                    f"iteration: {other} it uses gradients that {_previous(by, step.event)} "
                    f"already consumed, plus {cite(backward)}; call {shown(key, step.event, zero.event)}.zero_grad() once per step"
                )
            else:
                message = (
                    f"{cite(step.event)} uses gradients that {_previous(by, step.event)} already consumed: "
                    f"nothing resets {shown(key, step.event)}'s gradients before {cite(backward)} adds to them; "
                    f"call {shown(key, step.event)}.zero_grad() once per step"
                )
            yield ctx.diagnostic("ZG001", step.event, message, key, (backward, step.event),
                                 fix=ctx.fixes.zero_after_step(steps_in_loop(region, key, loop)))


def _per_iteration_guard(zeros: list[Ev], step: Ev, loop: int) -> tuple[Ev, str] | None:
    """A zero of the loop that runs under an `if` the step does not share, and that `if`."""
    for zero in zeros:
        own = [item for item in conditions_after(zero, loop) if item not in conditions_after(step, loop)]
        if own and own[-1][0] == "if":
            return zero, str(own[-1][1])
    return None


def _previous(by, step) -> str:
    if by is None or by.id == step.id:
        return "the previous iteration's step"
    return cite(by)


RULE = Rule(
    code="ZG001",
    name="missing-zero-grad",
    summary="Optimizer steps on gradients that an earlier step already consumed (no zero_grad in the loop)",
    explanation=EXPLANATION,
    check=check,
)
