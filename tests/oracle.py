"""A runtime gradient oracle: run a training script under torch and record, for every
parameter, each gradient contribution (and the backward that made it) since its
optimizer's last step.

A backward *belongs to* the optimizers of the first burst of steps after it (steps with
no backward between them). At every optimizer step, the gradient the step sees must be
the sum of the latest contributions since that optimizer's previous step (a zero may have
cleared the earlier ones): a contribution that belongs to this optimizer and was cleared
means *wiped*; gradients from before the previous step mean *stale*; an applied
contribution of a backward that belongs to other optimizers is a *leak* (a GAN's
generator loss left in the discriminator). Wiping a contribution that belongs to other
optimizers is correct. Inside `step(closure)`, each closure backward must start from
clean gradients (*pileup* otherwise). For hand-written updates (parameters no optimizer
owns), a backward after the tensor's value changed must start from clean gradients
(*manual_stale* otherwise).
"""
from __future__ import annotations

import contextlib
import runpy
from collections import Counter
from dataclasses import dataclass, field

from zgcheck.runtime.monitor import _leaves  # one walk of the autograd graph for oracle and runtime


@dataclass
class OracleReport:
    events: Counter = field(default_factory=Counter)
    losses: list[float] = field(default_factory=list)
    steps: int = 0

    @property
    def bugs(self) -> dict[str, int]:
        return {k: v for k, v in self.events.items() if v}

    def learned(self) -> bool:
        """The loss went down: the mean of the last few losses is below the first few."""
        if len(self.losses) < 4:
            return False
        k = max(1, len(self.losses) // 5)
        return sum(self.losses[-k:]) / k < sum(self.losses[:k]) / k


class Oracle:
    def __init__(self, torch) -> None:
        self.torch = torch
        self.report = OracleReport()
        # Per parameter: (backward id, contribution) since its optimizer's last step.
        self.ledger: dict[int, list[tuple[int, object]]] = {}
        self.values: dict[int, object] = {}
        self.owned: set[int] = set()
        self.leftover: dict[int, object] = {}
        self.belongs: dict[int, set[int]] = {}  # backward id -> optimizers of its first burst
        self.unassigned: list[int] = []
        self.burst: set[int] | None = None  # the open burst (no backward since its last step)
        self.backwards = 0
        self.in_closure_step = False
        self.closure_start = 0

    def grad_of(self, p):
        return p.grad.detach().clone() if p.grad is not None else self.torch.zeros_like(p)

    def close(self, a, b) -> bool:
        return self.torch.allclose(a, b, atol=1e-6, rtol=1e-4)

    def backward(self, original, tensors, *args, **kwargs):
        torch = self.torch
        roots = [tensors] if isinstance(tensors, torch.Tensor) else list(tensors)
        if roots and roots[0].numel() == 1:
            self.report.losses.append(float(roots[0].detach()))
        leaves = _leaves(roots)
        before = {id(p): self.grad_of(p) for p in leaves}
        for p in leaves:
            nonzero = bool(before[id(p)].abs().sum() > 0)
            if self.in_closure_step and nonzero:
                self.report.events["pileup"] += 1
            if id(p) not in self.owned and id(p) in self.values and nonzero:
                if not torch.equal(self.values[id(p)], p.detach()):
                    self.report.events["manual_stale"] += 1
        result = original(tensors, *args, **kwargs)
        self.backwards += 1
        self.unassigned.append(self.backwards)
        self.burst = None
        for p in leaves:
            added = self.grad_of(p) - before[id(p)]
            if float(added.abs().sum()) > 0:
                self.ledger.setdefault(id(p), []).append((self.backwards, added))
            self.values[id(p)] = p.detach().clone()
        return result

    def params(self, optimizer):
        return [p for group in optimizer.param_groups for p in group["params"]]

    def step_pre(self, optimizer, args, kwargs):
        self.report.steps += 1
        if self.burst is None:  # the first step after a backward opens a burst
            self.burst = set()
            for backward in self.unassigned:
                self.belongs[backward] = self.burst
            self.unassigned = []
        self.burst.add(id(optimizer))
        params = self.params(optimizer)
        self.owned.update(id(p) for p in params)
        # torch passes the optimizer itself as args[0]; a closure is the next argument.
        closure = args[1] if len(args) > 1 else kwargs.get("closure")
        if closure is not None:
            # Checked after the step when the closure ran no backward (Lightning passes one
            # that does nothing); an LBFGS closure's own backwards are checked for pileup.
            self.in_closure_step = True
            self.closure_start = self.backwards
            return
        self.check(optimizer)

    def check(self, optimizer) -> None:
        for p in self.params(optimizer):
            for kind in self.verdict(id(optimizer), self.grad_of(p), self.ledger.get(id(p), []), self.leftover.get(id(p))):
                self.report.events[kind] += 1

    def verdict(self, opt: int, seen, entries, left) -> list[str]:
        """What a step of optimizer ``opt`` sees in one parameter: [] when correct."""
        zero = self.torch.zeros_like(seen)
        suffixes = [zero]  # suffixes[j]: the sum of the last j contributions
        for _, added in reversed(entries):
            suffixes.append(suffixes[-1] + added)
        bases = [(zero, False)]
        if left is not None and float(left.abs().sum()) > 0:
            bases.append((left, True))
        for base, stale in bases:
            for kept in range(len(entries), -1, -1):  # prefer keeping more: fewer wipes
                if not self.close(seen, base + suffixes[kept]):
                    continue
                cut = len(entries) - kept
                found = ["stale"] if stale else []
                if any(opt in self.belongs.get(b, ()) for b, _ in entries[:cut]):
                    found.append("wiped")
                if any(opt not in self.belongs.get(b, {opt}) for b, _ in entries[cut:]):
                    found.append("leak")
                return found
        total = sum((added for _, added in entries), zero)
        extra = (seen - total).flatten()
        stale = left is not None and float(left.abs().sum()) > 0 and float(
            self.torch.nn.functional.cosine_similarity(extra, left.flatten(), dim=0)) > 0.5
        return ["stale" if stale else "wiped"]

    def step_post(self, optimizer, args, kwargs):
        if self.in_closure_step and self.backwards == self.closure_start:
            self.check(optimizer)  # the step does not change .grad: what it saw is still there
        self.in_closure_step = False
        for p in self.params(optimizer):
            self.ledger[id(p)] = []
            self.leftover[id(p)] = self.grad_of(p)


@contextlib.contextmanager
def watching():
    """Patch torch for the duration of a script run; yields the live report."""
    import torch
    import torch.autograd
    from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

    oracle = Oracle(torch)
    original = torch.autograd.backward

    def patched(tensors, *args, **kwargs):
        return oracle.backward(original, tensors, *args, **kwargs)

    torch.autograd.backward = patched
    pre = register_optimizer_step_pre_hook(oracle.step_pre)
    post = register_optimizer_step_post_hook(oracle.step_post)
    try:
        yield oracle.report
    finally:
        torch.autograd.backward = original
        pre.remove()
        post.remove()


def run_script(path: str) -> OracleReport:
    """Run a training script as __main__ under the oracle."""
    with watching() as report:
        with contextlib.redirect_stdout(None):
            runpy.run_path(path, run_name="__main__")
    return report
