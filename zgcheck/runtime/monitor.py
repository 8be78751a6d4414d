"""Where torch meets the ledger: hooks and the few patches that feed it events.

- global optimizer step pre/post hooks (`register_optimizer_step_pre_hook`): steps;
- per-parameter hooks: `register_hook` (before a contribution is added) and
  `register_post_accumulate_grad_hook` (after), on every leaf a backward reaches;
- `torch.autograd.backward` (which `Tensor.backward` calls): one record per backward pass,
  its call site, and — the first time a call site runs — a walk of its graph to find the
  leaves to hook (later passes from the same site do not walk);
- `Optimizer.zero_grad` / `Module.zero_grad`: only to name the zero's line in messages;
- `GradScaler.step`: a step it skips on inf/nan gradients uses up the backward passes.
Everything is undone by `uninstall()`. A bookkeeping error never breaks the training run:
it is reported once as a RuntimeWarning and the checks stop (`broken`).
"""
from __future__ import annotations

import warnings
from typing import Callable

from zgcheck.runtime.findings import Collector
from zgcheck.runtime.ledger import Ledger
from zgcheck.runtime.sites import Site, user_site
from zgcheck.runtime.state import Param

UNKNOWN = Site("<unknown>", 0, 0)


def _site() -> Site:
    """The user's frame that led here (zgcheck's and torch's own frames are skipped)."""
    return user_site() or UNKNOWN


def _leaves(roots) -> list:
    """Leaf tensors a backward from ``roots`` accumulates into (AccumulateGrad nodes)."""
    seen: set[int] = set()
    stack = [r.grad_fn for r in roots if getattr(r, "grad_fn", None) is not None]
    leaves = []
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


class Monitor:
    """One watch session: installs the hooks, owns the ledger and the findings."""

    def __init__(self, torch, exact: bool = False, warn: bool = True) -> None:
        self.torch = torch
        self.collector = Collector(warn)
        self.ledger = Ledger(self.track, self.collector.add, exact)
        self.params = self.ledger.params
        self.walked: set[Site] = set()
        self.step_counts: dict[int, int] = {}
        self.depth = 0
        self.broken = False
        self._undo: list[Callable[[], None]] = []

    def _safely(self, fn: Callable, *args) -> None:
        """Run a bookkeeping call; on an internal error, warn once and stop checking."""
        if self.broken:
            return
        try:
            fn(*args)
        except Exception as error:  # the user's training must go on whatever happens here
            self._stop(error)

    def _stop(self, error: Exception) -> None:
        self.broken = True
        warnings.warn(f"zgcheck.runtime stopped checking after an internal error: {error!r}",
                      RuntimeWarning, stacklevel=4)

    # -- install / uninstall ------------------------------------------------------------------

    def install(self) -> None:
        torch = self.torch
        from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

        self._patch(torch.autograd, "backward", self._backward)
        self._patch(torch.optim.Optimizer, "zero_grad", self._zero_grad(lambda o: _optimizer_params(o)))
        self._patch(torch.nn.Module, "zero_grad", self._zero_grad(lambda m: m.parameters()))
        self._patch(torch.amp.GradScaler, "step", self._scaler_step)
        for handle in (register_optimizer_step_pre_hook(self._step_pre),
                       register_optimizer_step_post_hook(self._step_post)):
            self._undo.append(handle.remove)

    def uninstall(self) -> None:
        while self._undo:
            self._undo.pop()()
        for param in self.params.values():
            for handle in param.handles:
                handle.remove()
            param.handles.clear()

    def _patch(self, owner, name: str, make: Callable) -> None:
        original = owner.__dict__[name]
        setattr(owner, name, make(original))
        self._undo.append(lambda: setattr(owner, name, original))

    # -- parameters -----------------------------------------------------------------------------

    def track(self, tensor) -> Param:
        """The ledger's record of ``tensor``, with its two hooks once it requires gradients."""
        param = self.params.get(id(tensor))
        if param is None or param.ref() is not tensor:
            param = self.params[id(tensor)] = Param(tensor)
        if not param.handles and tensor.requires_grad and tensor.is_leaf:
            param.handles = [
                tensor.register_hook(lambda incoming, param=param: self._before(param, incoming)),
                tensor.register_post_accumulate_grad_hook(lambda t, param=param: self._after(param, t)),
            ]
        return param

    # The two hooks run for every parameter on every backward: _safely's work, inlined.

    def _before(self, param: Param, incoming) -> None:
        if not self.broken:
            try:
                self.ledger.before(param, incoming)
            except Exception as error:
                self._stop(error)

    def _after(self, param: Param, tensor) -> None:
        if not self.broken:
            try:
                self._accumulated(param, tensor)
            except Exception as error:
                self._stop(error)

    def _accumulated(self, param: Param, tensor) -> None:
        if self.ledger.current is None:
            # A backward that did not go through torch.autograd.backward (C++, a saved reference):
            # one record per autograd graph task.
            task = self.torch._C._current_graph_task_id()
            if self.ledger.pending and self.ledger.pending[-1].task == task and task != -1:
                self.ledger.current = self.ledger.pending[-1]
            else:
                self.ledger.begin_backward(_site(), task)
            self.ledger.after(param, tensor)
            self.ledger.current = None
            return
        self.ledger.after(param, tensor)

    # -- patched calls ------------------------------------------------------------------------

    def _backward(self, original: Callable) -> Callable:
        def backward(tensors, *args, **kwargs):
            if self.depth:  # reentrant (checkpointing): part of the outer backward
                return original(tensors, *args, **kwargs)
            self._safely(self._begin_backward, tensors, kwargs.get("inputs"))
            self.depth += 1
            try:
                return original(tensors, *args, **kwargs)
            finally:
                self.depth -= 1
                self._safely(self.ledger.end_backward)

        return backward

    def _begin_backward(self, tensors, inputs) -> None:
        site = _site()
        if site not in self.walked:  # hook what this call site's graph reaches, once
            self.walked.add(site)
            torch = self.torch
            roots = [tensors] if isinstance(tensors, torch.Tensor) else list(tensors)
            extra = [inputs] if isinstance(inputs, torch.Tensor) else list(inputs or ())
            for leaf in _leaves(roots) + extra:
                self.track(leaf)
        self.ledger.begin_backward(site)

    def _zero_grad(self, params_of: Callable) -> Callable:
        def make(original: Callable) -> Callable:
            def zero_grad(obj, *args, **kwargs):
                params: list = []
                self._safely(self._zeroed, obj, params_of, params)
                result = original(obj, *args, **kwargs)
                # Known clean now: their content need not be looked at later.
                self._safely(self.ledger.cleared, params)
                return result

            return zero_grad

        return make

    def _zeroed(self, obj, params_of: Callable, params: list) -> None:
        params.extend(params_of(obj))
        self.ledger.zeroed(params, _site())

    def _scaler_step(self, original: Callable) -> Callable:
        def step(scaler, optimizer, *args, **kwargs):
            before = self.step_counts.get(id(optimizer), 0)
            result = original(scaler, optimizer, *args, **kwargs)
            if self.step_counts.get(id(optimizer), 0) == before:  # inf/nan: the scaler skipped it
                self._safely(self.ledger.step_skipped, optimizer, _site())
            return result

        return step

    # -- global optimizer hooks -------------------------------------------------------------

    def _step_pre(self, optimizer, args, kwargs) -> None:
        self.step_counts[id(optimizer)] = self.step_counts.get(id(optimizer), 0) + 1
        # torch passes the optimizer itself as args[0]; a closure is the next argument.
        closure = args[1] if len(args) > 1 else kwargs.get("closure")
        self._safely(self.ledger.step_begin, optimizer, _site(), closure is not None)

    def _step_post(self, optimizer, args, kwargs) -> None:
        self._safely(self.ledger.step_end, optimizer)


def _optimizer_params(optimizer) -> list:
    return [p for group in optimizer.param_groups for p in group["params"]]
