"""What zgcheck.runtime costs a training loop: a ~1M-parameter MLP on CPU, with and without
the checks, in alternating rounds.

    python bench/runtime.py                       # all loops, 7 rounds of 100 steps each
    python bench/runtime.py --rounds 3 --steps 50 --loops plain
    python bench/runtime.py --threads 2 --batch 256

Each round times every mode once over the same steps (order rotated per round), so load on
a shared machine hits all modes alike; a mode's figure is the median over rounds of its
seconds per optimizer step. CPU time of this process (user+sys) is reported too. Nothing
is asserted: the figures are printed.
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


def make_model() -> nn.Module:
    # 512*1024 + 1024 + 1024*512 + 512 + 512*10 + 10 = 1,055,242 parameters
    return nn.Sequential(nn.Linear(512, 1024), nn.ReLU(), nn.Linear(1024, 512), nn.ReLU(), nn.Linear(512, 10))


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


def bench(name: str, rounds: int, steps: int, batch: int) -> dict[str, tuple[float, float]]:
    torch.manual_seed(0)
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    micro = 4 if name == "accumulate" else 1
    batches = [(torch.randn(batch, 512), torch.randint(0, 10, (batch,))) for _ in range(steps * micro)]
    run(LOOPS[name], "off", model, optimizer, batches[:8])  # warm up allocator and kernels
    walls: dict[str, list[float]] = {m: [] for m in MODES}
    cpus: dict[str, list[float]] = {m: [] for m in MODES}
    for r in range(rounds):
        for mode in MODES[r % len(MODES):] + MODES[:r % len(MODES)]:
            wall, cpu = run(LOOPS[name], mode, model, optimizer, batches)
            walls[mode].append(wall / steps)
            cpus[mode].append(cpu / steps)
    return {m: (statistics.median(walls[m]), statistics.median(cpus[m])) for m in MODES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps per round and mode")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--loops", default=",".join(LOOPS), help=f"some of {','.join(LOOPS)}")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = sum(p.numel() for p in make_model().parameters())
    print(f"zgcheck.runtime overhead: MLP of {params:,} parameters, Adam, batch {args.batch}, "
          f"{args.threads} thread(s), median of {args.rounds} rounds x {args.steps} steps; "
          f"torch {torch.__version__}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'loop':<12} {'off ms/step':>12} {'watch':>16} {'exact':>16} {'watch CPU':>10} {'exact CPU':>10}")
    for name in args.loops.split(","):
        figures = bench(name, args.rounds, args.steps, args.batch)
        off_wall, off_cpu = figures["off"]

        def cell(mode: str) -> str:
            wall = figures[mode][0]
            return f"{wall * 1e3:7.2f} ({(wall / off_wall - 1) * 100:+5.1f}%)"

        def cpu(mode: str) -> str:
            return f"{(figures[mode][1] / off_cpu - 1) * 100:+9.1f}%"

        print(f"{name:<12} {off_wall * 1e3:12.2f} {cell('watch'):>16} {cell('exact'):>16} {cpu('watch')} {cpu('exact')}")


if __name__ == "__main__":
    main()
