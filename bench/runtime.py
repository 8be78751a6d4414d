"""What zgcheck.runtime costs a training loop: a ~1M-parameter MLP on CPU, with and without
the checks, in alternating rounds.

    python bench/runtime.py                       # all loops, 21 rounds of 20 steps per mode
    python bench/runtime.py --rounds 5 --steps 10 --loops plain
    python bench/runtime.py --threads 2 --batch 256

Two measurements per training loop:

1. The 1M-parameter MLP. Each round times every mode (off, watch, exact) once over the same
   steps, order rotated per round, so load on a shared machine hits all modes alike; a
   mode's overhead is the median over rounds of its time over the time with the checks off
   in the same round, with the quartiles to show the noise.
2. The bookkeeping alone: the same loop on an MLP of the same shape (six parameter tensors)
   but 8-16 units wide, where the arithmetic is negligible, so the difference is what the
   checks add per step, in microseconds. The checks' work depends on the number of
   parameter tensors and events, not on their size (except for `exact`, which copies every
   contribution), so this cost over the 1M model's step time is the overhead to expect on a
   quiet machine.

Wall and CPU time (user+sys of this process) are both reported. Nothing is asserted.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402
from torch import nn  # noqa: E402

import zgcheck.runtime as runtime  # noqa: E402

MODES = ("off", "watch", "exact")


def make_model(width: int = 1024) -> nn.Module:
    # width 1024: 512*1024 + 1024 + 1024*512 + 512 + 512*10 + 10 = 1,055,242 parameters
    inner = width // 2
    return nn.Sequential(nn.Linear(inner, width), nn.ReLU(), nn.Linear(width, inner), nn.ReLU(), nn.Linear(inner, 10))


def loop_plain(model, optimizer, batches) -> None:
    for x, y in batches:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()


def loop_clip(model, optimizer, batches) -> None:
    """In-place work on the gradients between backward and step (the checks look at them)."""
    for x, y in batches:
        optimizer.zero_grad(set_to_none=False)
        nn.functional.cross_entropy(model(x), y).backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()


def loop_accumulate(model, optimizer, batches) -> None:
    """Four micro-batches per step: every step adds to gradients already there."""
    for i, (x, y) in enumerate(batches):
        (nn.functional.cross_entropy(model(x), y) / 4).backward()
        if (i + 1) % 4 == 0:
            optimizer.step()
            optimizer.zero_grad()


LOOPS = {"plain": loop_plain, "clip": loop_clip, "accumulate": loop_accumulate}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(loop, mode: str, model, optimizer, batches) -> tuple[float, float]:
    """Wall and CPU seconds of one pass over ``batches`` in ``mode``."""
    if mode != "off":
        runtime.enable(exact=(mode == "exact"), warn=False)
    try:
        wall, cpu = time.perf_counter(), _cpu()
        loop(model, optimizer, batches)
        wall, cpu = time.perf_counter() - wall, _cpu() - cpu
    finally:
        if mode != "off":
            runtime.disable()
            assert runtime.report() == [], runtime.report()  # the benchmark loops are correct
    return wall, cpu


def bench(name: str, rounds: int, steps: int, batch: int, width: int) -> dict[str, dict[str, float]]:
    """Per mode: median seconds per step (wall, CPU), and the median and quartiles of the
    per-round ratio to "off" in the same round (pairing cancels slow drifts of the load)."""
    torch.manual_seed(0)
    model = make_model(width)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    micro = 4 if name == "accumulate" else 1
    batches = [(torch.randn(batch, width // 2), torch.randint(0, 10, (batch,))) for _ in range(steps * micro)]
    run(LOOPS[name], "off", model, optimizer, batches[:8])  # warm up allocator and kernels
    walls: dict[str, list[float]] = {m: [] for m in MODES}
    cpus: dict[str, list[float]] = {m: [] for m in MODES}
    for r in range(rounds):
        for mode in MODES[r % len(MODES):] + MODES[:r % len(MODES)]:
            wall, cpu = run(LOOPS[name], mode, model, optimizer, batches)
            walls[mode].append(wall / steps)
            cpus[mode].append(cpu / steps)
    figures = {}
    for mode in MODES:
        ratios = [w / o - 1 for w, o in zip(walls[mode], walls["off"])]
        q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
        figures[mode] = {
            "wall": statistics.median(walls[mode]), "cpu": statistics.median(cpus[mode]),
            "ratio": statistics.median(ratios), "q1": q1, "q3": q3,
            "cpu_ratio": statistics.median(c / o - 1 for c, o in zip(cpus[mode], cpus["off"])),
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per round and mode (1M model)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--loops", default=",".join(LOOPS), help=f"some of {','.join(LOOPS)}")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = sum(p.numel() for p in make_model().parameters())
    print(f"zgcheck.runtime overhead: MLP of {params:,} parameters, Adam, batch {args.batch}, "
          f"{args.threads} thread(s), {args.rounds} rounds x {args.steps} steps per mode; "
          f"torch {torch.__version__}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    print("overhead: median over rounds of (mode / off in the same round) - 1 [quartiles];")
    print("bookkeeping: what the checks add per step on the same loop with a 16-unit MLP (wall / CPU)")
    print(f"{'loop':<11} {'off ms/step':>11}  {'watch':>23}  {'exact':>23}  {'watch CPU':>9}  "
          f"{'bookkeeping us/step':>19}  {'= of off':>8}")
    for name in args.loops.split(","):
        big = bench(name, args.rounds, args.steps, args.batch, width=1024)
        small = bench(name, args.rounds, args.steps * 10, 4, width=16)
        added_wall = small["watch"]["wall"] - small["off"]["wall"]
        added_cpu = small["watch"]["cpu"] - small["off"]["cpu"]

        def cell(mode: str) -> str:
            m = big[mode]
            return f"{m['ratio'] * 100:+5.1f}% [{m['q1'] * 100:+5.1f}, {m['q3'] * 100:+5.1f}]"

        print(f"{name:<11} {big['off']['wall'] * 1e3:11.2f}  {cell('watch'):>23}  {cell('exact'):>23}  "
              f"{big['watch']['cpu_ratio'] * 100:+8.1f}%  {added_wall * 1e6:9.0f} / {added_cpu * 1e6:<7.0f}  "
              f"{added_wall / big['off']['wall'] * 100:7.1f}%")


if __name__ == "__main__":
    main()
