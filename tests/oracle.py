"""A runtime gradient oracle: run a training script under torch and record, for every
parameter, each gradient contribution since its last step.

At every optimizer step, the gradient the step sees must equal the sum of the
contributions since that optimizer's previous step (or, when another optimizer stepped in
between, since that step): more means *stale* gradients leaked in, less means they were
*wiped*. Inside `step(closure)`, each closure backward must start
from clean gradients (*pileup* otherwise). For hand-written updates (parameters no
optimizer owns), a backward after the tensor's value changed must start from clean
gradients (*manual_stale* otherwise).
"""
from __future__ import annotations

import contextlib
import runpy
from collections import Counter
from dataclasses import dataclass, field


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


def _leaves(roots) -> list:
    """Leaf tensors a backward from ``roots`` accumulates into (AccumulateGrad nodes)."""
    seen, stack, leaves = set(), [r.grad_fn for r in roots if r.grad_fn is not None], []
    while stack:
        fn = stack.pop()
        if fn is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        variable = getattr(fn, "variable", None)
        if variable is not None:
            leaves.append(variable)
        stack.extend(next_fn for next_fn, _ in fn.next_functions)
    return leaves


class Oracle:
    def __init__(self, torch) -> None:
        self.torch = torch
        self.report = OracleReport()
        self.contrib: dict[int, object] = {}
        self.values: dict[int, object] = {}
        self.owned: set[int] = set()
        self.leftover: dict[int, object] = {}
        self.recent: dict[int, object] = {}
        self.in_closure_step = False

    def grad_of(self, p):
        return p.grad.detach().clone() if p.grad is not None else self.torch.zeros_like(p)

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
        for p in leaves:
            added = self.grad_of(p) - before[id(p)]
            self.contrib[id(p)] = self.contrib.get(id(p), 0) + added
            self.recent[id(p)] = self.recent.get(id(p), 0) + added
            self.values[id(p)] = p.detach().clone()
        return result

    def params(self, optimizer):
        return [p for group in optimizer.param_groups for p in group["params"]]

    def step_pre(self, optimizer, args, kwargs):
        self.report.steps += 1
        params = self.params(optimizer)
        self.owned.update(id(p) for p in params)
        # torch passes the optimizer itself as args[0]; a closure is the next argument.
        closure = args[1] if len(args) > 1 else kwargs.get("closure")
        if closure is not None:
            self.in_closure_step = True
            return
        for p in params:
            seen = self.grad_of(p)
            zero = self.torch.zeros_like(p)
            total = self.contrib.get(id(p), zero)
            recent = self.recent.get(id(p), zero)
            # A backward followed by another optimizer's step may have been meant for that
            # step (a GAN's generator loss also writes into the discriminator, whose next
            # zero clears it), so both "everything since my last step" and "since the last
            # step of any optimizer" are acceptable.
            close = lambda a, b: self.torch.allclose(a, b, atol=1e-6, rtol=1e-4)  # noqa: E731
            # ... but a step that sees nothing after a zero wiped its contributions is wiped.
            if close(seen, total) or (close(seen, recent) and float(recent.abs().sum()) > 0):
                continue
            extra = (seen - total).flatten()
            left = self.leftover.get(id(p))
            stale = left is not None and float(left.abs().sum()) > 0 and float(
                self.torch.nn.functional.cosine_similarity(extra, left.flatten(), dim=0)) > 0.5
            self.report.events["stale" if stale else "wiped"] += 1

    def step_post(self, optimizer, args, kwargs):
        self.in_closure_step = False
        self.recent.clear()
        for p in self.params(optimizer):
            self.contrib[id(p)] = self.torch.zeros_like(p)
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
