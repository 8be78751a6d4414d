"""zgcheck.runtime: catch stale, wiped and leaked gradients while training runs.

    with zgcheck.runtime.watch():
        train()
    for finding in zgcheck.runtime.report():
        print(finding.code, finding.kind, finding.filename, finding.row, finding.message)

or `python -m zgcheck.runtime train.py args...`. Each problem site warns once, through
`warnings`, with category :class:`GradientWarning`. torch is imported only when checks are
enabled (`pip install 'zgcheck[runtime]'`); importing this module does not need it.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

from zgcheck.runtime.findings import Finding, GradientWarning, Related

__all__ = ["GradientWarning", "Finding", "Related", "watch", "enable", "disable", "report", "stats", "is_enabled"]

_active = None  # the running Monitor
_depth = 0  # nested enable() calls
_last = None  # the last Monitor, so report() still answers after disable()


def enable(exact: bool = False, warn: bool = True) -> None:
    """Start checking every backward, zero_grad and optimizer step in this process.

    ``exact`` keeps a copy of every contribution to size each problem (slower, more memory);
    ``warn`` issues a :class:`GradientWarning` the first time each problem site is seen.
    Nested calls are counted: checks stop at the matching :func:`disable`."""
    global _active, _depth, _last
    if _active is not None:
        _depth += 1
        return
    try:
        import torch
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise RuntimeError("zgcheck.runtime needs torch: pip install 'zgcheck[runtime]'") from error
    from zgcheck.runtime.monitor import Monitor

    monitor = Monitor(torch, exact=exact, warn=warn)
    monitor.install()
    _active, _last, _depth = monitor, monitor, 1


def disable() -> None:
    """Stop checking (hooks and patches removed); :func:`report` still returns the findings."""
    global _active, _depth
    if _active is None:
        return
    _depth -= 1
    if _depth == 0:
        _active.uninstall()
        _active = None


def is_enabled() -> bool:
    return _active is not None


def report() -> list[Finding]:
    """The findings of the running (or the last) session, in file and line order."""
    return _last.collector.findings() if _last is not None else []


def stats() -> dict[str, int]:
    """How much the running (or last) session checked: steps, backward passes, optimizers."""
    if _last is None:
        return {"steps": 0, "backwards": 0, "optimizers": 0}
    ledger = _last.ledger
    return {"steps": ledger.steps, "backwards": ledger.backwards, "optimizers": len(ledger.optimizers)}


@contextlib.contextmanager
def watch(exact: bool = False, warn: bool = True) -> Iterator[None]:
    """Check the gradients of everything that runs inside the block (see :func:`enable`)."""
    enable(exact=exact, warn=warn)
    try:
        yield
    finally:
        disable()
