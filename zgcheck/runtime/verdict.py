"""The verdict at one optimizer step: stale, leaked or wiped contributions (see ledger.py)."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from zgcheck.runtime import findings as F
from zgcheck.runtime.state import Backward, Burst, Grad, Mark, Param, is_zero

if TYPE_CHECKING:
    from zgcheck.runtime.ledger import Ledger


def judge(ledger: Ledger, opt: int, mark: Mark, burst: Burst, params: list[tuple[Param, object]]) -> None:
    """Report what the step of optimizer ``opt`` at ``mark`` applies that it should not, or misses."""
    ids = {id(p) for _, p in params}
    due = [b for b in burst.backwards if opt not in b.applied and b.touched & ids]
    present, assigned, held = _present(ledger, params, look="grouped")
    if due and all(b in present for b in due) and _probe_cleared(held, due):
        present, assigned, held = _present(ledger, params, look="always")
    stale = [b for b in present if opt in b.applied and b.site is not None]
    leaked = [b for b in present if opt not in b.applied and b.site is not None
              and b.burst is not None and opt not in b.burst.steps]
    fresh = [b for b in present if b not in stale and b not in leaked]
    if stale:
        _stale(ledger, opt, mark, ids, stale, fresh, present)
    if leaked:
        _leak(ledger, mark, ids, leaked, fresh, present)
    _wiped(ledger, opt, mark, ids, due, present, assigned)
    for b in present:
        b.applied.setdefault(opt, mark)


def _present(ledger: Ledger, params, look: str) -> tuple[dict[Backward, Grad], bool, list[tuple[object, Grad]]]:
    """Backward passes whose contributions the step sees (with the tensor holding each), whether
    some gradient was put there by user code rather than by a backward, and each gradient.
    ``look="grouped"``: see `_look_at_moved`; else as `Ledger.resolve`."""
    held = []
    for param, p in params:
        grad = ledger.resolve(param, p.grad, look="never" if look == "grouped" else look)
        if grad is not None:
            held.append((p.grad, grad))
    if look == "grouped":
        _look_at_moved(held)
    present: dict[Backward, Grad] = {}
    assigned = False
    for _, grad in held:
        assigned = assigned or grad.assigned
        for b in grad.live:
            present.setdefault(b, grad)
    return present, assigned, held


def _look_at_moved(held: list[tuple[object, Grad]]) -> None:
    """Gradients changed in place since the backward: scaled (clipping, unscaling) or zeroed.
    One operation over all of them (`clip_grad_norm_`, a zeroing loop) moves every version
    by the same amount, so the smallest of each such group is looked at, and the rest of the
    group only when that one is all zero."""
    groups: dict[int, list[tuple[object, Grad]]] = {}
    for tensor, grad in held:
        if tensor._version != grad.version:
            if grad.live:
                groups.setdefault(tensor._version - grad.version, []).append((tensor, grad))
            grad.version = tensor._version
    for group in groups.values():
        group.sort(key=lambda held_one: held_one[0].numel())
        if is_zero(group[0][0]):
            for tensor, grad in group:
                if is_zero(tensor):
                    grad.live, grad.assigned = [], False


def _probe_cleared(held: list[tuple[object, Grad]], due: list[Backward]) -> bool:
    """Is the smallest gradient holding a due contribution all zero? A `.data.zero_()` between
    backward and step moves no version counter; one look at a small tensor (a bias, as a
    rule) tells whether to look at all of them."""
    holders = [(tensor.numel(), i) for i, (tensor, grad) in enumerate(held) if any(b in due for b in grad.live)]
    return bool(holders) and is_zero(held[min(holders)[1]][0])


def _stale(ledger: Ledger, opt: int, mark: Mark, ids: set[int], stale: list[Backward], fresh: list[Backward],
           present: dict[Backward, Grad]) -> None:
    b = stale[-1]
    earlier = b.applied[opt]
    zero = ledger.last_zero(ids)
    share = _share(ledger, _holders(ids, present), stale, fresh)
    if share == 0.0:
        return
    ledger.sink(F.stale(mark.site, b.site, earlier.site, zero.site if zero else None,
                        zeroed_since=zero is not None and zero.seq > earlier.seq,
                        aliased=present[b].owner not in ids, repeated=bool(fresh), share=share))


def _leak(ledger: Ledger, mark: Mark, ids: set[int], leaked: list[Backward], fresh: list[Backward],
          present: dict[Backward, Grad]) -> None:
    b = leaked[-1]
    other = next(iter(b.burst.steps.values()))
    zero = ledger.last_zero(ids)
    share = _share(ledger, _holders(ids, present), leaked, fresh)
    if share == 0.0:
        return
    ledger.sink(F.leak(mark.site, b.site, other.site, zero.site if zero and zero.seq < b.seq else None, share))


def _holders(ids: set[int], present: dict[Backward, Grad]) -> set[int]:
    """The optimizer's parameters and those whose gradient tensors it borrowed (contributions
    are kept under the id of the parameter they were accumulated into)."""
    return ids | {grad.owner for grad in present.values()}


def _wiped(ledger: Ledger, opt: int, mark: Mark, ids: set[int], due: list[Backward],
           present: dict[Backward, Grad], assigned: bool) -> None:
    lost = [b for b in due if b not in present and b.site is not None]
    kept = [b for b in due if b in present]
    suspect = False
    # Gradients the user computed and assigned (p.grad = g) replace backward passes on purpose.
    if lost and not assigned:
        zero = ledger.last_zero(ids)
        if not kept:
            _report_wipe(ledger, mark, ids, lost, kept, zero, accumulated=False)
        else:
            # A first pass measured something (other call site): the two-pass scheme, correct.
            same = [b for b in lost if any(b.site == k.site for k in kept)]
            suspect = bool(same)
            if same and ledger.suspect.get(opt):
                _report_wipe(ledger, mark, ids, same, kept, zero, accumulated=True)
    ledger.suspect[opt] = suspect


def _report_wipe(ledger: Ledger, mark: Mark, ids: set[int], lost: list[Backward], kept: list[Backward],
                 zero: Mark | None, accumulated: bool) -> None:
    b = lost[-1]
    share = _share(ledger, ids, lost, kept)
    if share == 0.0:
        return
    ledger.sink(F.wiped(mark.site, b.site, zero.site if zero and zero.seq > b.seq else None, accumulated, share))


def _share(ledger: Ledger, ids: set[int], bad: list[Backward], good: list[Backward]) -> float | None:
    """With exact=True: the norm of the ``bad`` contributions over the norm of all of them
    (0.0: the problem adds nothing, so it is dropped). None when not exact or unknown."""
    if not ledger.exact:
        return None
    bad2 = total2 = 0.0
    for pid in ids:
        b = _sum(x.parts.get(pid) for x in bad)
        g = _sum(x.parts.get(pid) for x in good)
        if b is not None:
            bad2 += float((b * b).sum())
        both = b if g is None else (g if b is None else b + g)
        if both is not None:
            total2 += float((both * both).sum())
    return math.sqrt(bad2 / total2) if total2 > 0 else None


def _sum(parts):
    total = None
    for part in parts:
        if part is not None:
            total = part if total is None else total + part
    return total
