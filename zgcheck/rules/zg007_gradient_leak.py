"""ZG007 gradient-leak: a step applies gradients another optimizer's loss left behind."""
from __future__ import annotations

from typing import Iterator

from bisect import bisect_right
from dataclasses import replace

from zgcheck.diagnostics import Diagnostic, Fix
from zgcheck.events import Event, Region
from zgcheck.leaks import Leak, find_leaks
from zgcheck.ordering import zero_effect
from zgcheck.reach import ReachFinder
from zgcheck.rules.base import Rule, RuleContext, cite

EXPLANATION = """\
What it does
  Finds an optimizer whose step() applies gradients that a backward() meant for
  another optimizer wrote into its parameters: the other optimizer stepped after that
  backward, and nothing cleared this optimizer's gradients before its own step.

Why it hurts training
  In a GAN the generator's loss runs through the discriminator (`D(G(z))`), in
  actor-critic code the actor's loss runs through the critic (`Q(s, pi(s))`). Their
  backward() fills the .grad of both networks. When the second network was zeroed
  before that backward (both optimizers zeroed at the top of the iteration, or each
  right after its own step), its next step adds the other loss's gradient to its own:
  the discriminator is pushed to help the generator, the critic to flatter the actor.
  Nothing errors; training is just worse, and the leaked gradient can be as large as
  the network's own.

Bad
  for real in loader:
      opt_g.zero_grad()
      opt_d.zero_grad()
      g_loss = bce(D(G(z)), ones)          # reaches G and D
      g_loss.backward()
      opt_g.step()
      d_loss = bce(D(real), ones) + bce(D(G(z).detach()), zeros)
      d_loss.backward()
      opt_d.step()                         # ZG007: also applies g_loss's gradient

Good
  for real in loader:
      opt_g.zero_grad()
      g_loss = bce(D(G(z)), ones)
      g_loss.backward()
      opt_g.step()
      opt_d.zero_grad()                    # clears what g_loss left in D
      d_loss = bce(D(real), ones) + bce(D(G(z).detach()), zeros)
      d_loss.backward()
      opt_d.step()

  Also correct: freezing D during the generator's pass (`D.requires_grad_(False)`,
  `set_requires_grad(D, False)`, Lightning's `toggle_optimizer(opt_g)`), and one joint
  loss whose optimizers all step before the next backward (encoder + decoder), and
  phases that accumulate micro-batches: a backward followed in its own block by its
  own optimizer's (conditional) step is that optimizer's loss, never a leak into it.
  Losses are followed through `accelerator.unwrap_model(m)`, and optimizers built
  through a chosen class (`optimizer_class = torch.optim.AdamW`) own their parameters.
  Not reported: code where it cannot be seen which networks a loss runs through
  (modules handed in from elsewhere).

How the fix works
  The optimizer's zero is moved to right before its first backward after the other
  optimizer's step (or, when its zero sits at the top of the iteration or also clears
  other optimizers, a new `opt.zero_grad()` is inserted there). The fix is safe when
  the zero, that backward and the other step are in the same block and the optimizer
  was built in the file; otherwise it is unsafe. It is also unsafe when both optimizers
  were zeroed together right before that backward: one loss may then be a joint
  objective both are meant to step on (an encoder and a generator trained on one
  reconstruction loss, the generator on one more term of its own), which the fix would
  drop from the second step; the message says so.
"""


def check(ctx: RuleContext) -> Iterator[Diagnostic]:
    if ctx.parsed is None:
        return
    reach = ReachFinder(ctx.parsed, ctx.facts)
    for region in ctx.regions:
        paths = {o.event.id: o.path for o in region.occurrences}
        order = sorted(paths)  # event ids in extraction (source) order
        for key, leaks in find_leaks(region, ctx.facts, reach).items():
            by_step: dict[int, list[Leak]] = {}
            for leak in leaks:
                if _stepped_by_its_block(region, paths, order, leak.backward) == key:
                    continue  # the step's own loss, on a path that skips its (accumulating) step
                by_step.setdefault(leak.step, []).append(leak)
            for step_id in sorted(by_step):
                # Name the too-early zero when some path has one (the first iteration has none).
                first = min(by_step[step_id], key=lambda l: (l.zero is None, l.backward, l.other_step, l.zero or 0, l.closer))
                yield _diagnostic(ctx, region, key, first)


def _stepped_by_its_block(region: Region, paths: dict, order: list[int], backward: int) -> str | None:
    """The optimizer whose step first follows ``backward`` in its own block (or under an
    `if` there: `loss.backward(); if (i + 1) % k == 0: opt.step()`): the loss is that
    optimizer's own. A path that skips that step and meets another optimizer's step first
    (a phase switch the analysis cannot correlate with it) does not make it a leak into
    the owner's step."""
    start = paths.get(backward)
    if start is None:
        return None
    for event_id in order[bisect_right(order, backward):]:
        path = paths[event_id]
        if path[: len(start)] != start:
            return None  # out of the backward's block
        event = region.events.get(event_id)
        if event is None or any(kind == "loop" for kind, _ in path[len(start):]):
            continue
        if event.kind == "step" and event.opt:
            return event.opt
    return None


def _diagnostic(ctx: RuleContext, region: Region, key: str, leak: Leak) -> Diagnostic:
    events = region.events
    step, backward, other = events[leak.step], events[leak.backward], events[leak.other_step]
    zero = events.get(leak.zero) if leak.zero is not None else None
    if zero is not None:
        why = f"{cite(zero)} ran before that backward, too early to clear them"
    else:
        why = f"nothing resets {key}'s gradients between {cite(other)} and this step"
    message = (
        f"{cite(step)} applies gradients that {cite(backward)} wrote into {key}'s parameters for "
        f"{cite(other)}: {why}; zero {key}'s gradients after {other.text} and before its own backward"
    )
    fix = _fix(ctx, region, key, leak)
    if zero is not None and _zeroed_together(region, zero, other, backward):
        # One backward right after both optimizers were cleared together may be a joint
        # objective that both are meant to step on (an encoder and a generator), not a leak.
        message += f" (if {backward.text} is meant to train both, mark this step `# noqa: ZG007`)"
        fix = replace(fix, applicability="unsafe") if fix is not None else None
    return ctx.diagnostic("ZG007", step, message, key, (zero, backward, other, step), fix=fix)


def _zeroed_together(region: Region, zero: Event, other: Event, backward: Event) -> bool:
    """Was the other optimizer zeroed in one group with ``zero`` (on the same or the next
    line, as `opt_e.zero_grad(); opt_g.zero_grad()`), before ``backward``?"""
    return any(mate.kind == "zero" and mate.opt == other.opt and mate.line < backward.line
               and abs(mate.line - zero.line) <= 1 for mate in region.events.values())


def _fix(ctx: RuleContext, region: Region, key: str, leak: Leak) -> Fix | None:
    events = region.events
    step, other, target = events[leak.step], events[leak.other_step], events[leak.closer]
    if not step.target:
        return None
    zero = events.get(leak.zero) if leak.zero is not None else None
    keys = {e.opt for e in events.values() if e.kind == "step" and e.opt}
    moved = zero if zero is not None and _movable(ctx, zero, key, keys, other, step) else None
    return ctx.fixes.zero_before_backward(target, moved, other, f"{step.target}.zero_grad()", step.opt)


def _movable(ctx: RuleContext, zero: Event, key: str, keys: set, other: Event, step: Event) -> bool:
    """Move (rather than add) a zero that clears only ``key`` and does not sit at the top
    of the iteration (before the other optimizer's phase), where it may guard more."""
    if zero.weak or zero.unknown or (zero.opt is None and not zero.models):
        return False
    if any(zero_effect(zero, k, ctx.facts) is not None for k in keys if k != key):
        return False
    return zero.line > other.line or zero.line > step.line


RULE = Rule(
    code="ZG007",
    name="gradient-leak",
    summary="An optimizer steps on gradients that another optimizer's loss left in its parameters",
    explanation=EXPLANATION,
    check=check,
)
