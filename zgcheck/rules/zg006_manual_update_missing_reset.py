"""ZG006 manual-update-missing-reset: hand-written SGD that never clears ``p.grad``."""
from __future__ import annotations

from typing import Iterator

from zgcheck.diagnostics import Diagnostic
from zgcheck.rules.base import Rule, RuleContext, cite, stale_findings

EXPLANATION = """\
What it does
  Finds hand-written parameter updates (`p -= lr * p.grad`, `p.data.add_(p.grad,
  alpha=-lr)`, `w.data -= lr * w.grad.data`) in a training loop where `p.grad` is
  never reset.

Why it hurts training
  backward() adds into .grad. Without `p.grad = None` / `p.grad.zero_()` after each
  update, every update applies the sum of all gradients so far: the steps grow with
  time and training diverges or oscillates.

Bad
  for x, y in data:
      loss_fn(w * x + b, y).backward()
      with torch.no_grad():
          w -= lr * w.grad        # ZG006
          b -= lr * b.grad        # ZG006

Good
  for x, y in data:
      loss_fn(w * x + b, y).backward()
      with torch.no_grad():
          w -= lr * w.grad
          b -= lr * b.grad
          w.grad = None
          b.grad = None

How the fix works
  `p.grad = None` (or `p.grad.zero_()` when the file already resets in place, also as
  `p.grad.data.zero_()`, where `None` would break that later call) is added
  right after the update, in the same block. Safe when the update is a plain statement.
"""


def check(ctx: RuleContext) -> Iterator[Diagnostic]:
    for ordering in ctx.manual_orderings():
        base = ordering.key[len("<manual:"):-1]
        for update, _by, backward, _loop, _zeros in stale_findings(ctx, ordering):
            name = update.event.grad_var or base
            message = (
                f"manual update {cite(update.event)} uses {name}.grad, which is never reset: each "
                f"{cite(backward)} adds to the gradients of all earlier iterations; "
                f"set {name}.grad = None after the update"
            )
            # The file's own style: where it zeroes gradients in place, `= None` would break
            # a later `w.grad.data.zero_()`.
            text = ctx.parsed.text
            style_zero = (".grad.zero_()" in text or ".grad.data.zero_()" in text) and ".grad = None" not in text
            yield ctx.diagnostic("ZG006", update.event, message, base, (backward, update.event),
                                 fix=ctx.fixes.reset_after_update(update.event, style_zero))


RULE = Rule(
    code="ZG006",
    name="manual-update-missing-reset",
    summary="Hand-written parameter update in a loop never resets p.grad",
    explanation=EXPLANATION,
    check=check,
)
