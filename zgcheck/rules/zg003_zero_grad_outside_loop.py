"""ZG003 zero-grad-outside-loop: the only reset runs outside the loop that steps."""
from __future__ import annotations

from typing import Iterator

from zgcheck.diagnostics import Diagnostic
from zgcheck.rules.base import Rule, RuleContext, cite, stale_findings, steps_in_loop, zeros_before_loop, zeros_of, shown

EXPLANATION = """\
What it does
  Finds a zero_grad() that runs only outside (before, after, or in an outer epoch
  loop of) the loop that repeats backward() and step().

Why it hurts training
  The reset happens once, then every batch of the inner loop adds its gradient on
  top of all earlier batches of the same epoch: from the second step on, each step
  reuses stale gradients. It looks correct at a glance because zero_grad() is there.

Bad
  optimizer.zero_grad()         # ZG003: runs once
  for x, y in loader:
      loss_fn(model(x), y).backward()
      optimizer.step()

Good
  for x, y in loader:
      optimizer.zero_grad()
      loss_fn(model(x), y).backward()
      optimizer.step()

How the fix works
  `optimizer.zero_grad()` is inserted right after the step inside the loop. The
  outer call is left in place (it is harmless). Moving code into a loop is a
  judgement call, so the fix is unsafe unless the optimizer was built in the file.
"""


def check(ctx: RuleContext) -> Iterator[Diagnostic]:
    seen: set[tuple[str, int]] = set()
    for ordering in ctx.optimizer_orderings():
        region, key = ordering.region, ordering.key
        zeros = [z for z in zeros_of(region, key, ctx.facts, weak=False)]
        for step, _by, backward, loop, zeros_in_loop in stale_findings(ctx, ordering):
            outside = zeros_before_loop(zeros, step, loop)
            if zeros_in_loop or not outside or (key, loop) in seen:
                continue
            seen.add((key, loop))
            loop_line = region.loops[loop].line
            before = [z for z in outside if z.event.line < loop_line]
            zero = (before[-1] if before else outside[0]).event
            message = (
                f"{cite(zero)} runs only outside the loop (line {loop_line}) that repeats "
                f"{cite(backward)} and {cite(step.event)}: from the second step on, {shown(key, step.event, zero)} "
                f"steps on stale gradients; reset them inside the loop"
            )
            yield ctx.diagnostic("ZG003", zero, message, key, (zero, backward, step.event),
                                 fix=ctx.fixes.zero_after_step(steps_in_loop(region, key, loop)))


RULE = Rule(
    code="ZG003",
    name="zero-grad-outside-loop",
    summary="zero_grad() runs only outside the loop that repeats backward() and step()",
    explanation=EXPLANATION,
    check=check,
)
