"""ZG005 closure-missing-zero-grad: a step closure runs backward() without a reset."""
from __future__ import annotations

from typing import Iterator

from zgcheck.diagnostics import Diagnostic
from zgcheck.events import Ev, Event, If, Node, children
from zgcheck.ordering import zero_effect
from zgcheck.rules.base import Rule, RuleContext, cite, reported_by_helper, shown

EXPLANATION = """\
What it does
  Finds a closure passed to `optimizer.step(closure)` that calls backward() without
  zeroing the gradients first. A reset of another optimizer that may hold the same
  parameters counts (a meta-learner whose closure re-runs its inner adaptation), unless
  both optimizers are known to own different networks.

  Only for optimizers that may call the closure several times per step: LBFGS, a
  class of the project whose step() calls it more than once (or in a loop) without
  resetting in between, another library's line search or quasi-Newton class (by its
  name), and optimizers whose class cannot be seen. torch's other optimizers call the
  closure once per step; a missing reset there is ZG001's.

Why it hurts training
  Optimizers such as LBFGS call the closure several times within one step (line
  search). Each call adds its gradient to the previous ones, so the optimizer sees a
  sum of several evaluations and its curvature estimates are wrong. A zero_grad()
  before step(closure) does not help: it runs once, the closure runs many times.

Bad
  def closure():
      loss = loss_fn(model(x), y)
      loss.backward()            # ZG005
      return loss
  optimizer.step(closure)

Good
  def closure():
      optimizer.zero_grad()
      loss = loss_fn(model(x), y)
      loss.backward()
      return loss
  optimizer.step(closure)

How the fix works
  `optimizer.zero_grad()` is inserted as the closure's first statement. Safe when the
  closure is a function defined in the same file and the optimizer is certain.
"""


def closure_missing_zero(ctx: RuleContext, step: Event) -> Event | None:
    """The first backward of ``step``'s closure that no zero precedes, if any."""
    if step.closure is None or step.closure_once:
        return None
    return _unzeroed(step.closure, step, ctx)[0]


def _unzeroed(node: Node, step: Event, ctx: RuleContext) -> tuple[Event | None, bool]:
    """In source order: the first backward that no zero precedes, and whether a zero came
    first. A side of an `if` with a backward before any zero is reported (a closure chosen
    by a test); a zero on either side counts as one (`if torch.is_grad_enabled():
    optimizer.zero_grad()`, the LBFGS closure of torch's documentation)."""
    if isinstance(node, Ev):
        if node.event.kind == "backward":
            return node.event, False
        zeroes = zero_effect(node.event, step.opt or "", ctx.facts) is not None or _may_share(node.event, step, ctx)
        return None, zeroes
    if isinstance(node, If):
        then, orelse = _unzeroed(node.then, step, ctx), _unzeroed(node.orelse, step, ctx)
        missing = then[0] or orelse[0]
        return missing, missing is None and (then[1] or orelse[1])
    for child in children(node):
        missing, zeroed = _unzeroed(child, step, ctx)
        if missing is not None or zeroed:
            return missing, zeroed
    return None, False


def _may_share(zero: Event, step: Event, ctx: RuleContext) -> bool:
    """A zero of another optimizer in the closure (a meta-learner's inner optimizer
    resetting the network before each adaptation): it clears the stepping optimizer's
    gradients too unless both are known to own different networks."""
    if zero.kind != "zero" or zero.opt is None:
        return False
    mine, theirs = ctx.facts.owners_of(step.opt or ""), ctx.facts.owners_of(zero.opt)
    return mine is None or theirs is None or bool(mine & theirs)


def check(ctx: RuleContext) -> Iterator[Diagnostic]:
    for region in ctx.regions:
        for event in region.events.values():
            if event.kind != "step" or event.closure is None:
                continue
            backward = closure_missing_zero(ctx, event)
            if backward is None or reported_by_helper(region, (backward, event)):
                continue
            message = (
                f"closure `{event.closure_name}` passed to {cite(event)} calls {cite(backward)} without "
                f"zeroing first: {shown(event.opt or '', event)} may evaluate the closure several times per step and "
                f"the gradients pile up; call {shown(event.opt or '', event)}.zero_grad() at the top of the closure"
            )
            yield ctx.diagnostic("ZG005", backward, message, event.opt or "", (backward, event),
                                 fix=ctx.fixes.zero_first_in_closure(event))


RULE = Rule(
    code="ZG005",
    name="closure-missing-zero-grad",
    summary="Closure passed to optimizer.step(closure) runs backward() without zero_grad()",
    explanation=EXPLANATION,
    check=check,
)
