"""What the ledger records: events in run order, backward passes, bursts of steps, gradient
tensors and parameters; and the two looks at tensor content it allows itself."""
from __future__ import annotations

import weakref
from dataclasses import dataclass

from zgcheck.runtime.sites import Site

LIVE_CAP = 16  # contributions remembered per gradient tensor: the oldest and the newest 15


@dataclass(frozen=True)
class Mark:
    """An event in run order: its sequence number and where it ran."""

    seq: int
    site: Site


class Backward:
    """One backward pass: the parameters it accumulated into, its burst, the steps that applied it."""

    __slots__ = ("seq", "site", "touched", "burst", "applied", "parts", "task", "flagged")

    def __init__(self, seq: int, site: Site | None, task: int = -1) -> None:
        self.seq, self.site, self.task = seq, site, task
        self.touched: set[int] = set()
        self.burst: Burst | None = None
        self.applied: dict[int, Mark] = {}  # optimizer id -> the step that applied it
        self.parts: dict[int, object] = {}  # exact mode: parameter id -> its contribution
        self.flagged = False  # reported while it accumulated (once per pass, not per parameter)


class Burst:
    """Steps with no backward between them, and the backward passes that belong to them."""

    __slots__ = ("backwards", "steps")

    def __init__(self, backwards: list[Backward]) -> None:
        self.backwards = backwards
        self.steps: dict[int, Mark] = {}  # optimizer id -> its step in this burst
        for b in backwards:
            b.burst = self


class Grad:
    """What one gradient tensor holds."""

    __slots__ = ("ref", "version", "live", "owner", "assigned")

    def __init__(self, tensor, owner: int, live: list[Backward], assigned: bool = False) -> None:
        self.ref = weakref.ref(tensor)
        self.version: int = tensor._version
        self.live = live
        self.owner = owner  # id of the parameter whose backward created it
        self.assigned = assigned  # content put there by user code, not by a backward


class Param:
    """A tracked parameter (any leaf tensor that gets gradients)."""

    __slots__ = ("ref", "grad", "owners", "sample", "carry", "incoming", "handles", "fresh")

    def __init__(self, tensor) -> None:
        self.ref = weakref.ref(tensor)
        self.grad: Grad | None = None
        self.owners: set[int] = set()  # ids of optimizers that stepped it
        self.sample = None  # for tensors no optimizer owns: a few values at the last backward
        self.carry: tuple[Grad | None, list[Backward]] | None = None
        self.incoming = None
        self.handles: list = []
        self.fresh = True  # never seen: whatever .grad holds predates the watch


def is_zero(tensor) -> bool:
    """All zero (a cleared gradient); False when that cannot be told. A few strided values
    are looked at first: a real gradient shows a non-zero one at once, and a full pass over a
    large gradient costs about as much as an optimizer's elementwise update."""
    try:
        if tensor.is_sparse:
            tensor = tensor.coalesce().values()
        if tensor.is_contiguous() and tensor.numel() > 64:
            flat = tensor.view(-1)
            if bool(flat[:: (flat.numel() // 31) | 1].any()):  # odd stride: not one column
                return False
        return not bool(tensor.any())
    except (RuntimeError, TypeError, NotImplementedError):
        return False


def sample(tensor, exact: bool):
    """Enough of a tensor's values to tell that a hand-written update changed it."""
    flat = tensor.detach().reshape(-1)
    if exact or flat.numel() <= 64:
        return flat.clone()
    return flat[:: (flat.numel() // 63) | 1].clone()
