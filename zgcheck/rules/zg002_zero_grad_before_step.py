"""ZG002 zero-grad-before-step: a zero between backward() and step() wipes the gradients."""
from __future__ import annotations

from typing import Iterator

from zgcheck.diagnostics import Diagnostic
from zgcheck.rules.base import Rule, RuleContext, cite, reported_by_helper

EXPLANATION = """\
What it does
  Finds a reset of all of an optimizer's gradients that runs after backward() and
  before the step() that should use them, with no backward() in between.

Why it hurts training
  The step sees zeroed (or None) gradients, so it updates nothing (plain SGD) or only
  applies momentum and weight decay. The model does not learn and nothing errors.
  This is the loop of many tutorials: backward(); zero_grad(); step().

Bad
  loss.backward()
  optimizer.zero_grad()        # ZG002: clears what backward() just produced
  optimizer.step()

Good
  optimizer.zero_grad()
  loss.backward()
  optimizer.step()

  Not reported: clearing only some parameters between backward and step (freezing a
  layer, masking embedding rows, a parameter loop that picks some by name or shape),
  a reset between two backward passes when
  another backward still follows before the step, and a zero written before an
  optional backward and an optional step (a backward a helper already ran, a warm-up
  without updates): it clears what the step would use only when a backward whose step
  was skipped is followed by a step whose backward was skipped.

How the fix works
  The zero is moved to right after the step it was starving, in the same block (or to
  the top of the iteration), which keeps accumulation semantics. The fix is safe when
  the zero and the step sit in the same block; otherwise (a zero in a helper, across a
  with/try boundary) it is unsafe.
"""


def check(ctx: RuleContext) -> Iterator[Diagnostic]:
    for ordering in ctx.orderings:
        events = ordering.region.events
        for zero_id, bw_id, step_id in sorted(ordering.wiped, key=lambda w: (w[0], w[2])):
            zero, step = events[zero_id], events[step_id]
            backward = events.get(bw_id) if bw_id else None
            if reported_by_helper(ordering.region, (zero, backward, step)):
                continue
            message = (
                f"{cite(zero)} clears the gradients that {cite(backward)} produced "
                f"before {cite(step)} can use them"
            )
            yield ctx.diagnostic("ZG002", zero, message, ordering.key, (backward, zero, step),
                                 fix=ctx.fixes.move_zero_after_step(zero, step))


RULE = Rule(
    code="ZG002",
    name="zero-grad-before-step",
    summary="zero_grad() between backward() and step() wipes the gradients the step needs",
    explanation=EXPLANATION,
    check=check,
)
