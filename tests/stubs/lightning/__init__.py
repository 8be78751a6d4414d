"""A stand-in for the parts of Lightning that manual-optimization fixtures use, for the
runtime oracle tests when Lightning is not installed (it is not a test dependency).

`toggle_optimizer` / `untoggle_optimizer` follow Lightning 2.x (core/module.py): toggling
records every optimizer parameter's `requires_grad`, sets it False, then restores it for
the toggled optimizer's parameters; untoggling restores the others from that record (and
does nothing when nothing was toggled). `Trainer.fit` runs `training_step` over the
loader's batches for `max_epochs` epochs.
"""
from __future__ import annotations

import torch

__all__ = ["LightningModule", "Trainer"]


class LightningModule(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = True
        self.trainer: Trainer | None = None
        self._param_requires_grad_state: dict = {}

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def optimizers(self):
        opts = self.trainer.optimizers
        return opts[0] if len(opts) == 1 else list(opts)

    def manual_backward(self, loss, *args, **kwargs) -> None:
        loss.backward(*args, **kwargs)

    def toggle_optimizer(self, optimizer) -> None:
        state = {}
        for opt in self.trainer.optimizers:
            for group in opt.param_groups:
                for param in group["params"]:
                    if param in state:
                        continue
                    state[param] = param.requires_grad
                    param.requires_grad = False
        for group in optimizer.param_groups:
            for param in group["params"]:
                param.requires_grad = state[param]
        self._param_requires_grad_state = state

    def untoggle_optimizer(self, optimizer) -> None:
        for opt in self.trainer.optimizers:
            if opt is not optimizer:
                for group in opt.param_groups:
                    for param in group["params"]:
                        if param in self._param_requires_grad_state:
                            param.requires_grad = self._param_requires_grad_state[param]
        self._param_requires_grad_state = {}

    def log(self, *args, **kwargs) -> None:
        pass

    def log_dict(self, *args, **kwargs) -> None:
        pass


class Trainer:
    def __init__(self, max_epochs: int = 1, **kwargs) -> None:
        self.max_epochs = max_epochs
        self.optimizers: list = []

    def fit(self, model: LightningModule, train_dataloaders) -> None:
        model.trainer = self
        configured = model.configure_optimizers()
        if isinstance(configured, (list, tuple)) and configured and isinstance(configured[0], (list, tuple)):
            configured = configured[0]  # ([optimizers], [schedulers])
        self.optimizers = list(configured) if isinstance(configured, (list, tuple)) else [configured]
        model.train()
        for _ in range(self.max_epochs):
            for batch_idx, batch in enumerate(train_dataloaders):
                model.training_step(batch, batch_idx)
