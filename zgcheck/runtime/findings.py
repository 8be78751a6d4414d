"""Findings of the runtime checks, in the linter's vocabulary (codes, messages, related lines).

Torch-free: the public names (`GradientWarning`, `Finding`) import without torch.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

from zgcheck.runtime.sites import Site

# What each code means at run time; the static rules of the same code catch the same bug.
KINDS = {
    "ZG001": "stale", "ZG003": "stale", "ZG005": "stale", "ZG006": "stale",
    "ZG002": "wiped", "ZG004": "wiped",
    "ZG007": "leak",
}


class GradientWarning(UserWarning):
    """A training step used stale, wiped or leaked gradients (zgcheck.runtime)."""


@dataclass(frozen=True)
class Related:
    """An event a finding talks about: its label (backward, zero, step, ...) and where it ran."""

    label: str
    site: Site


@dataclass(frozen=True)
class Finding:
    """One problem at one place, with how many times it happened during the run."""

    code: str
    message: str
    site: Site  # the step (for ZG006, which has no step: the backward)
    related: tuple[Related, ...] = ()
    count: int = 1
    share: float | None = None  # with exact=True: the problem's part of the gradient norm

    @property
    def kind(self) -> str:
        return KINDS[self.code]

    @property
    def filename(self) -> str:
        return self.site.filename

    @property
    def row(self) -> int:
        return self.site.line

    def key(self) -> tuple:
        first = self.related[0].site if self.related else None
        return (self.code, self.site, first)


class Collector:
    """Findings by site: the first occurrence is kept (and warned about once), later ones count."""

    def __init__(self, warn: bool) -> None:
        self.warn = warn
        self._found: dict[tuple, Finding] = {}

    def add(self, finding: Finding) -> None:
        key = finding.key()
        known = self._found.get(key)
        if known is not None:
            self._found[key] = replace(known, count=known.count + 1)
            return
        self._found[key] = finding
        if self.warn:
            warnings.warn_explicit(f"{finding.code} {finding.message}", GradientWarning,
                                   finding.site.filename, finding.site.line)

    def findings(self) -> list[Finding]:
        return sorted(self._found.values(), key=lambda f: (f.filename, f.row, f.site.column, f.code))


def _share(share: float | None, what: str) -> str:
    return "" if share is None else f" ({what}: {share:.0%} of the gradient's norm)"


def _outside(zero: Site, step: Site) -> bool:
    """The reset sits in an enclosing block (before the loop, in an epoch loop): it is
    indented less than the step. A reset under a condition inside the loop is not."""
    return zero.filename == step.filename and zero.column < step.column


def stale(step: Site, backward: Site, earlier: Site, zero: Site | None, zeroed_since: bool,
          aliased: bool, repeated: bool, share: float | None = None) -> Finding:
    """A step applies contributions an earlier step of the same optimizer already applied.

    ZG003 when resets do run but backward + step repeat without one (``repeated``: fresh
    contributions came with the stale ones) and the reset sits outside the step's block, as
    when the only reset is outside the loop; a reset under a condition inside it is ZG001."""
    if earlier == step:
        message = (f"{step.label()} applies again gradients that {backward.label(step)} produced for one of "
                   "its earlier runs")
    else:
        message = (f"{step.label()} applies gradients that {backward.label(step)} produced for an earlier step "
                   f"of the same optimizer, {earlier.label(step)}")
    related = [Related("backward", backward), Related("earlier step", earlier)]
    code = "ZG001"
    if aliased:
        message += (": its .grad is another tensor's gradient (p._grad = q.grad), and nothing clears that "
                    "tensor's gradient")
    elif zero is not None and not zeroed_since and repeated and _outside(zero, step):
        code = "ZG003"
        message += f": the last reset, {zero.label(step)}, ran before that step and not again"
    else:
        message += ": nothing cleared them in between"
    if zero is not None:
        related.append(Related("zero", zero))
    return Finding(code, message + _share(share, "stale part"), step, tuple(related), share=share)


def wiped(step: Site, backward: Site, zero: Site | None, accumulated: bool, share: float | None = None) -> Finding:
    """A reset destroyed contributions meant for this step (all of them: ZG002; earlier micro-batches: ZG004)."""
    cleared = f"{zero.label(step)} cleared" if zero is not None else "code that sets .grad cleared"
    if accumulated:
        code = "ZG004"
        message = (f"{cleared} the gradients that {backward.label(step)} accumulated for {step.label()}: "
                   "only the micro-batches after the last reset reach the step")
    else:
        code = "ZG002"
        message = f"{cleared} the gradients that {backward.label(step)} produced before {step.label()} could use them"
    related = [Related("backward", backward)] + ([Related("zero", zero)] if zero is not None else [])
    return Finding(code, message + _share(share, "wiped part"), step, tuple(related), share=share)


def leak(step: Site, backward: Site, other: Site, zero: Site | None, share: float | None = None) -> Finding:
    """A step applies a contribution of a backward that belonged to another optimizer's step."""
    message = (f"{step.label()} applies gradients that {backward.label(step)} produced for another "
               f"optimizer's step, {other.label(step)}")
    if zero is not None:
        message += f": this optimizer's last reset, {zero.label(step)}, ran before that backward"
    else:
        message += ": this optimizer's gradients were not reset after it"
    related = [Related("backward", backward), Related("other step", other)]
    related += [Related("zero", zero)] if zero is not None else []
    return Finding("ZG007", message + _share(share, "leaked part"), step, tuple(related), share=share)


def pileup(step: Site, backward: Site, share: float | None = None) -> Finding:
    """Inside `step(closure)`, a closure's backward adds to the previous evaluation's gradients."""
    message = (f"{backward.label(step)} inside the closure of {step.label()} adds to the gradients an earlier "
               "evaluation of the closure left: the closure must reset them first (zero_grad())")
    return Finding("ZG005", message + _share(share, "stale part"), step, (Related("backward", backward),),
                   share=share)


def manual_stale(backward: Site, earlier: Site) -> Finding:
    """A tensor no optimizer owns was updated by hand, and its .grad still holds the old gradient."""
    message = (f"{backward.label()} adds to the .grad of a tensor that was updated by hand since "
               f"{earlier.label(backward)} produced it: nothing reset its .grad after the update")
    return Finding("ZG006", message, backward, (Related("backward", earlier),))
