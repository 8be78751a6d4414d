"""Benchmark zgcheck against ruff and torch-preflight, side by side, alternating runs.

    python bench/run.py                      # generated trees of 100, 1,000, 10,000 files
    python bench/run.py --sizes 1000 --reps 5
    python bench/run.py --tree path/to/repo  # any tree

Tools are looked up next to this Python first, then on PATH: install them in the same venv
(`pip install -e . ruff torch-preflight`). A tool that is missing or fails is reported and
skipped. Wall time is the median of the runs; CPU time is user+sys of the child and all its
descendants (from wait4); peak memory is the largest sum of RSS over the child's process
tree, sampled every 20 ms in one extra, untimed run (sampling would disturb the timings).
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen import generate_tree, library_module, training_module  # noqa: E402

# A tool whose first run takes longer than this is run once per tree, not --reps times.
SLOW_SECONDS = 30.0


def _tool(name: str) -> str | None:
    """A console script next to this interpreter, else on PATH."""
    local = os.path.join(os.path.dirname(sys.executable), name)
    return local if os.access(local, os.X_OK) else shutil.which(name)


def _timed(cmd: list[str], cwd: str, sample: bool = False) -> tuple[float, float, int, int]:
    """Wall seconds, CPU seconds (user+sys of the whole tree), exit code and, when
    ``sample``, the peak summed RSS of the process tree (bytes; sampled every 50 ms)."""
    done, peak = threading.Event(), [0]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def sampler() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            done.wait(0.05)

    thread = threading.Thread(target=sampler) if sample else None
    if thread:
        thread.start()
    # wait4, not poll(): its rusage covers the child and every descendant it reaped.
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    done.set()
    if thread:
        thread.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, proc.returncode, peak[0]


def _tree_rss(root: int) -> int:
    """Sum of RSS (bytes) of ``root`` and its descendants, from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as handle:
                    fields = handle.read().rsplit(b")", 1)[1].split()
                parents[int(entry)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    total = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/statm") as handle:
                total += int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return total


def _commands(tree: str, cache: str) -> dict[str, list[str] | None]:
    """The contenders; None when a tool is not installed."""
    ruff, preflight = _tool("ruff"), _tool("torch-preflight")
    return {
        "zgcheck cold": [sys.executable, "-m", "zgcheck", "check", "--no-cache", "-o", "concise", tree],
        "zgcheck cold -j1": [sys.executable, "-m", "zgcheck", "check", "--no-cache", "-j1", "-o", "concise", tree],
        "zgcheck warm": [sys.executable, "-m", "zgcheck", "check", "--cache-dir", cache, "-o", "concise", tree],
        "ruff": [ruff, "check", "--no-cache", "--select", "ALL", "--quiet", tree] if ruff else None,
        "torch-preflight": [preflight, "check", "-q", tree] if preflight else None,
    }


def bench_tree(tree: str, label: str, skip: set[str], reps: int) -> None:
    """Time every tool on ``tree``, alternating, and print a markdown table."""
    cache = tempfile.mkdtemp(prefix="zgcheck-bench-cache-")
    commands = {k: v for k, v in _commands(tree, cache).items() if k not in skip}
    subprocess.run(commands["zgcheck warm"], stdout=subprocess.DEVNULL, check=False)  # fill the cache
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name, cmd in commands.items() if cmd}
    broken = {name: "not installed" for name, cmd in commands.items() if not cmd}
    broken.update({name: "left out (see note)" for name in sorted(skip)})
    peaks: dict[str, int] = {}
    once: set[str] = set()
    # Round 0 is a warm-up that also samples memory (sampling would disturb timings); a
    # tool slower than SLOW_SECONDS keeps that one run as its only timing.
    for rep in range(reps + 1):
        for name in [n for n in runs if n not in once]:
            wall, cpu, code, peak = _timed(commands[name], os.getcwd(), sample=(rep == 0))
            if code not in (0, 1):
                broken[name] = f"exit code {code}"
                del runs[name]
            elif rep == 0:
                peaks[name] = peak
                if wall > SLOW_SECONDS:
                    once.add(name)
                    runs[name].append((wall, cpu))
            else:
                runs[name].append((wall, cpu))
    _print_table(label, runs, peaks, broken)
    shutil.rmtree(cache, ignore_errors=True)


def _print_table(label: str, runs: dict, peaks: dict, broken: dict) -> None:
    """Markdown: median wall, median CPU, peak tree RSS, and ratios to zgcheck cold."""
    base = statistics.median(w for w, _ in runs["zgcheck cold"]) if runs.get("zgcheck cold") else None
    print(f"\n### {label}\n")
    print("| tool | runs | wall (median) | CPU user+sys | peak RSS (tree) | wall / zgcheck cold |")
    print("|---|---|---|---|---|---|")
    for name, values in runs.items():
        wall = statistics.median(w for w, _ in values)
        cpu = statistics.median(c for _, c in values)
        ratio = f"{wall / base:.2f}x" if base else "-"
        print(f"| {name} | {len(values)} | {wall:.3f} s | {cpu:.3f} s | {peaks[name] / 2**20:.0f} MB | {ratio} |")
    for name, why in broken.items():
        print(f"| {name} | - | could not run: {why} | | | |")
    sys.stdout.flush()


def bench_one_file(reps: int) -> None:
    """The pre-commit case: one training file, against the cost of `import libcst`."""
    folder = tempfile.mkdtemp(prefix="zgcheck-bench-one-")
    rng = random.Random(3)
    training, library = os.path.join(folder, "train.py"), os.path.join(folder, "utils.py")
    for path, text in ((training, training_module(rng)), (library, library_module(rng))):
        with open(path, "w", encoding="utf-8") as out:
            out.write(text)
    commands = {
        "python -c 'import libcst' (floor)": [sys.executable, "-c", "import libcst"],
        "zgcheck, one training file, --no-cache": [sys.executable, "-m", "zgcheck", "check", "--no-cache", training],
        "zgcheck, one library file": [sys.executable, "-m", "zgcheck", "check", library],
        "ruff --select ALL, one training file": [_tool("ruff") or "ruff", "check", "--no-cache", "--select", "ALL", training],
    }
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(reps):
        for name, cmd in commands.items():
            runs[name].append(_timed(cmd, os.getcwd())[:2])
    floor = statistics.median(w for w, _ in runs["python -c 'import libcst' (floor)"])
    print("\n### One file (pre-commit)\n")
    print("| command | wall (median) | CPU user+sys | / import-libcst floor |")
    print("|---|---|---|---|")
    for name, values in runs.items():
        wall = statistics.median(w for w, _ in values)
        print(f"| {name} | {wall:.3f} s | {statistics.median(c for _, c in values):.3f} s | {wall / floor:.2f}x |")
    shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", help="benchmark this tree instead of generated ones")
    parser.add_argument("--sizes", default="100,1000,10000", help="generated tree sizes (files)")
    parser.add_argument("--reps", type=int, default=5, help="timed runs per tool (alternating)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--preflight-max-files", type=int, default=1000,
                        help="leave torch-preflight out on bigger trees (it needs minutes per 1,000 files)")
    parser.add_argument("--skip", default="", help="comma-separated tools to leave out: ruff, torch-preflight")
    args = parser.parse_args()
    skip = {name for name in args.skip.split(",") if name}
    _describe_machine()
    bench_one_file(args.reps)
    if args.tree:
        bench_tree(args.tree, label=args.tree, skip=skip, reps=args.reps)
        return
    for size in (int(s) for s in args.sizes.split(",")):
        folder = tempfile.mkdtemp(prefix=f"zgcheck-bench-{size}-")
        counts = generate_tree(folder, size, args.seed)
        too_big = {"torch-preflight"} if size > args.preflight_max_files else set()
        if too_big:
            print(f"\nnote: torch-preflight is left out on {size:,} files (> --preflight-max-files {args.preflight_max_files:,})")
        lines = sum(open(os.path.join(d, f), encoding="utf-8").read().count("\n") for d, _, fs in os.walk(folder) for f in fs)
        label = f"{size:,} files, {lines:,} lines ({counts['training']} training, {counts['mentions']} other prefilter hits)"
        bench_tree(folder, label=label, skip=skip | too_big, reps=min(args.reps, 3) if size >= 10_000 else args.reps)
        shutil.rmtree(folder, ignore_errors=True)


def _describe_machine() -> None:
    """Where the figures come from: CPU, cores, load, versions."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            model = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else ()
    print(f"machine: {model}, {os.cpu_count()} cores, load average {', '.join(f'{x:.2f}' for x in load)}")
    print(f"python {sys.version.split()[0]}; ruff: {_tool('ruff') or 'not installed'}; "
          f"torch-preflight: {_tool('torch-preflight') or 'not installed'}")


if __name__ == "__main__":
    main()
