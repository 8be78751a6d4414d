"""The gradient ledger: which backward's contributions sit in which gradient tensor, and what
each optimizer step applies (the state model of GUIDE.md section 1, observed instead of inferred).

Every `.grad` tensor gets a `Grad` record listing the backward passes whose contributions it
holds. Records follow the tensor, not the parameter, so `p._grad = q.grad` aliasing is seen.
A clear is seen as `zero_grad()` (the monitor reports it), the tensor going away
(`set_to_none`), or its content being all zero when its version counter moved (`zero_()`)
or when more is added to what a step already used (`.data.zero_()` moves no counter). Nothing
is cloned unless `exact` (then each contribution is kept, to size the problems).

A backward *belongs to* the optimizers of the first burst of steps after it (steps with no
backward between them). At a step of optimizer O:
- **stale**: its gradients hold a backward that an earlier step of O already applied;
- **leak**: they hold a backward that belongs to other optimizers only;
- **wiped**: a backward that belongs to O and reached O's parameters is in none of them —
  all of it (ZG002), or earlier micro-batches while a later one of the same call site
  survives, on two steps in a row (ZG004; once is a skipped bad batch).
"""
from __future__ import annotations

from typing import Callable

from zgcheck.runtime import findings as F
from zgcheck.runtime.sites import Site
from zgcheck.runtime.state import LIVE_CAP, Backward, Burst, Grad, Mark, Param, is_zero, sample
from zgcheck.runtime.verdict import judge


class Ledger:
    """Receives backward / accumulate / zero / step events and reports findings to ``sink``."""

    def __init__(self, track: Callable[[object], Param], sink: Callable[[F.Finding], None], exact: bool) -> None:
        self.track, self.sink, self.exact = track, sink, exact
        self.seq = 0
        self.params: dict[int, Param] = {}  # filled by ``track``
        self.grads: dict[int, Grad] = {}  # id of a gradient tensor -> its record (checked by identity)
        self._prune_at = 1024
        self.zeros: dict[int, Mark] = {}  # parameter id -> the last zero_grad() that covered it
        self.suspect: dict[int, bool] = {}  # optimizer id -> its last step lost same-site micro-batches
        self.pending: list[Backward] = []
        self.burst: Burst | None = None
        self.current: Backward | None = None
        self.closure: tuple[int, Mark] | None = None  # the optimizer whose step(closure) runs
        self.prewatch = Backward(0, None)
        self.steps = 0
        self.backwards = 0
        self.optimizers: set[int] = set()

    def _mark(self, site: Site) -> Mark:
        self.seq += 1
        return Mark(self.seq, site)

    # -- backward passes and accumulation ---------------------------------------------------

    def begin_backward(self, site: Site, task: int = -1) -> Backward:
        self.seq += 1
        self.backwards += 1
        self.current = Backward(self.seq, site, task)
        self.pending.append(self.current)
        return self.current

    def end_backward(self) -> None:
        self.current = None

    def before(self, param: Param, incoming) -> None:
        """A contribution is about to be added to ``param``'s gradient."""
        tensor = param.ref()
        if tensor is None:
            return
        # When a step already used what is there and no counter says it was cleared, look:
        # `p.grad.data.zero_()` (old-style code) moves none. Accumulation is not looked at.
        grad = self.resolve(param, tensor.grad, look="used")
        live = list(grad.live) if grad is not None else []
        param.carry = (grad, live)
        if self.exact:
            param.incoming = incoming.detach().clone()
        if live and self.current is not None:
            self._check_accumulation(param, tensor, live)

    def _check_accumulation(self, param: Param, tensor, live: list[Backward]) -> None:
        """Adding to what a closure's earlier evaluation left (ZG005), or to the gradient of a
        tensor updated by hand since (ZG006)."""
        current = self.current
        if current.flagged:
            return
        if self.closure is not None and self.closure[0] in param.owners:
            current.flagged = True
            self.sink(F.pileup(self.closure[1].site, current.site))
        elif (not param.owners and param.sample is not None and live[-1].site is not None
              and not any(b.applied for b in live)):  # applied by an optimizer: its steps judge it
            now = sample(tensor, self.exact)
            if now.shape != param.sample.shape or not now.equal(param.sample):
                current.flagged = True
                self.sink(F.manual_stale(current.site, live[-1].site))

    def after(self, param: Param, tensor) -> None:
        """A contribution of the current backward was added to ``tensor.grad``."""
        b = self.current
        if b is None:
            return
        grad, live = param.carry if param.carry is not None else (self._lookup(tensor.grad), [])
        param.carry = None
        live = self._cap(live + [b], id(tensor))
        if grad is not None and grad.ref() is tensor.grad:
            grad.live, grad.version = live, tensor.grad._version
        else:
            grad = self._new_grad(tensor.grad, id(tensor), live)
        param.grad, param.fresh = grad, False
        b.touched.add(id(tensor))
        if self.exact and param.incoming is not None:
            known = b.parts.get(id(tensor))
            b.parts[id(tensor)] = param.incoming if known is None else known + param.incoming
            param.incoming = None
        if not param.owners:
            param.sample = sample(tensor, self.exact)

    def _cap(self, live: list[Backward], pid: int) -> list[Backward]:
        if len(live) <= LIVE_CAP:
            return live
        first, dropped = live[0], live[1:-(LIVE_CAP - 1)]
        if self.exact:  # keep their sum, so sizes stay right
            for b in dropped:
                part = b.parts.get(pid)
                if part is not None:
                    first.parts[pid] = part if pid not in first.parts else first.parts[pid] + part
        return [first] + live[-(LIVE_CAP - 1):]

    # -- what a gradient tensor holds ---------------------------------------------------------

    def _lookup(self, tensor) -> Grad | None:
        grad = self.grads.get(id(tensor)) if tensor is not None else None
        return grad if grad is not None and grad.ref() is tensor else None

    def _new_grad(self, tensor, owner: int, live: list[Backward], assigned: bool = False) -> Grad:
        grad = self.grads[id(tensor)] = Grad(tensor, owner, live, assigned)
        if len(self.grads) > self._prune_at:  # records of freed tensors: swept now and then
            self.grads = {key: g for key, g in self.grads.items() if g.ref() is not None}
            self._prune_at = max(1024, 2 * len(self.grads))
        return grad

    def resolve(self, param: Param, tensor, look: str = "moved") -> Grad | None:
        """The record of the tensor now in ``param.grad`` (None: no gradient). Its content is
        looked at (is it all zero?) when its version moved; with ``look="used"`` also when a
        step already applied what it holds; with ``look="always"``, always; with
        ``look="never"``, never (the version is then left for the caller to compare)."""
        if tensor is None:
            param.grad = None
            return None
        grad = self._lookup(tensor)
        if grad is None:
            # A tensor no backward of ours produced: from before the watch, or assigned by user code.
            content = not is_zero(tensor)
            live = [self.prewatch] if param.fresh and content else []
            grad = self._new_grad(tensor, id(param.ref()), live, assigned=content and not param.fresh)
        elif look == "never":
            param.grad, param.fresh = grad, False
            return grad
        elif grad.live and (tensor._version != grad.version or look == "always"
                            or (look == "used" and grad.live[0].applied)) and is_zero(tensor):
            grad.live, grad.assigned = [], False
        grad.version = tensor._version
        param.grad, param.fresh = grad, False
        return grad

    # -- zero_grad() and steps ------------------------------------------------------------------

    def zeroed(self, params, site: Site) -> None:
        """`zero_grad()` of an optimizer or module ran over ``params`` (for lines in messages)."""
        mark = self._mark(site)
        for p in params:
            self.zeros[id(p)] = mark

    def cleared(self, params) -> None:
        """`zero_grad()` just cleared ``params``: what their gradients held is gone."""
        for p in params:
            param = self.params.get(id(p))
            if param is None or param.ref() is not p:
                continue
            grad = self._lookup(p.grad)
            if grad is not None:
                grad.live, grad.assigned, grad.version = [], False, p.grad._version
            param.grad = grad

    def _join(self, opt: int, mark: Mark) -> Burst:
        if self.pending or self.burst is None:
            self.burst = Burst(self.pending)
            self.pending = []
        self.burst.steps.setdefault(opt, mark)
        return self.burst

    def _params(self, optimizer) -> list[tuple[Param, object]]:
        tracked = []
        for group in optimizer.param_groups:
            for p in group["params"]:
                param = self.track(p)
                param.owners.add(id(optimizer))
                tracked.append((param, p))
        return tracked

    def step_begin(self, optimizer, site: Site, closure: bool) -> None:
        self.steps += 1
        self.optimizers.add(id(optimizer))
        mark = self._mark(site)
        params = self._params(optimizer)
        burst = self._join(id(optimizer), mark)
        if closure:
            self.closure = (id(optimizer), mark)
            return
        judge(self, id(optimizer), mark, burst, params)

    def step_end(self, optimizer) -> None:
        """After `step(closure)`: the closure's backward passes were applied by this step."""
        if self.closure is None or self.closure[0] != id(optimizer):
            return
        opt, mark = self.closure
        self.closure = None
        self._join(opt, mark)
        self.apply(opt, mark, self._params(optimizer))

    def step_skipped(self, optimizer, site: Site) -> None:
        """`scaler.step(O)` skipped O.step() (inf/nan gradients): the backward passes are used up."""
        mark = self._mark(site)
        self._join(id(optimizer), mark)
        self.apply(id(optimizer), mark, self._params(optimizer))

    def apply(self, opt: int, mark: Mark, params: list[tuple[Param, object]]) -> None:
        for param, p in params:
            grad = self.resolve(param, p.grad)
            for b in grad.live if grad is not None else ():
                b.applied.setdefault(opt, mark)

    def last_zero(self, param_ids) -> Mark | None:
        marks = [self.zeros[pid] for pid in param_ids if pid in self.zeros]
        return max(marks, key=lambda m: m.seq) if marks else None
