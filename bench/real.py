"""Real-shaped benchmarks: zgcheck against `ruff check --select ALL` on library-heavy trees.

    python bench/real.py                  # both trees, 3 alternating rounds
    python bench/real.py --trees torch --reps 5
    python bench/real.py --trees dense --scripts 120

Trees:
  torch  the installed torch package (found with importlib.util.find_spec, never imported,
         never fetched; skipped with a message when torch is not installed): ~2,300 files
         of library code, hundreds of which mention backward and step.
  dense  the standard library (without its tests) plus generated training scripts of
         300-1,500 lines (trainer classes whose methods split backward and step, GANs,
         step functions, a few real bugs; bench/gen.py), copied to a temporary folder.

For each tree, in one alternating run (zgcheck cold, ruff, zgcheck cold -j1, zgcheck warm,
repeated --reps times): median wall time, median CPU (user+sys of the process and every
process it waited for), largest resident set of any one of those processes (from
getrusage, measured in a fresh helper process per run), and the ratios the goals speak of.
Then the slowest files (each file checked alone, in-process), and the one-file case against
`python -c "import libcst"`. Plain Python only: ruff must be installed next to this
interpreter or on PATH. Goals are printed next to the figures, never asserted.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gen import large_training_module

GOALS = {
    "cold": 1.0,  # zgcheck cold / ruff --select ALL
    "warm": 0.3,  # zgcheck warm / ruff cold
    "rss_mb": 200,  # largest process on the torch tree
    "file_s": 0.5,  # slowest single torch file
    "one_file": 1.3,  # one training file / python -c "import libcst"
    "jobs": 1.6,  # -j1 / -j2 wall time
}


def _tool(name: str) -> str | None:
    local = os.path.join(os.path.dirname(sys.executable), name)
    return local if os.access(local, os.X_OK) else shutil.which(name)


def _measure(cmd: list[str]) -> dict:
    """Run ``cmd`` under a fresh helper process: wall and CPU seconds, and the largest RSS
    of any process it waited for (getrusage of the helper's children)."""
    helper = (
        "import json, resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "wall = time.perf_counter() - t\n"
        "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(json.dumps({'wall': wall, 'cpu': u.ru_utime + u.ru_stime, 'rss_mb': u.ru_maxrss / 1024, 'code': code}))\n"
    )
    out = subprocess.run([sys.executable, "-c", helper, *cmd], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _alternate(commands: dict[str, list[str]], reps: int, warmup: bool = True) -> dict[str, list[dict]]:
    """Every command once per round, in turn; a first, untimed round warms file caches."""
    runs: dict[str, list[dict]] = {name: [] for name in commands}
    for round_ in range(reps + (1 if warmup else 0)):
        for name, cmd in commands.items():
            result = _measure(cmd)
            if result["code"] not in (0, 1):
                print(f"  warning: {name} exited with {result['code']}", file=sys.stderr)
            if round_ or not warmup:
                runs[name].append(result)
    return runs


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _pair_ratio(a: list[dict], b: list[dict]) -> float:
    """Median of the round-by-round ratios (pairing cancels the machine's drift)."""
    return statistics.median(x["wall"] / y["wall"] for x, y in zip(a, b))


def _goal(value: float, goal: float, higher_is_better: bool = False) -> str:
    met = value >= goal if higher_is_better else value <= goal
    return f"goal {'>=' if higher_is_better else '<='}{goal:g}: {'met' if met else 'NOT met'}"


def bench_tree(label: str, tree: str, reps: int, jobs: int, file_times: bool, top: int) -> None:
    ruff = _tool("ruff")
    zg = [sys.executable, "-m", "zgcheck", "check", "-o", "concise", "--exit-zero"]
    cache = tempfile.mkdtemp(prefix="zgcheck-bench-cache-")
    commands = {
        "zgcheck cold": zg + ["--no-cache", f"-j{jobs}", tree],
        "ruff --select ALL": [ruff, "check", "--no-cache", "--select", "ALL", "--quiet", "--exit-zero", tree] if ruff else None,
        "zgcheck cold -j1": zg + ["--no-cache", "-j1", tree],
        "zgcheck warm": zg + ["--cache-dir", cache, f"-j{jobs}", tree],
    }
    missing = [name for name, cmd in commands.items() if cmd is None]
    commands = {name: cmd for name, cmd in commands.items() if cmd is not None}
    subprocess.run(commands["zgcheck warm"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    runs = _alternate(commands, reps)
    shutil.rmtree(cache, ignore_errors=True)
    files = sum(1 for _, _, names in os.walk(tree) for n in names if n.endswith(".py"))
    print(f"\n### {label}: {tree} ({files:,} .py files), load average {_load()}\n")
    print("| command | runs | wall (median) | CPU user+sys | largest process RSS |")
    print("|---|---|---|---|---|")
    for name, values in runs.items():
        print(f"| {name} | {len(values)} | {_median(values, 'wall'):.2f} s | {_median(values, 'cpu'):.2f} s | "
              f"{max(r['rss_mb'] for r in values):.0f} MB |")
    for name in missing:
        print(f"| {name} | - | not installed | | |")
    cold = runs["zgcheck cold"]
    if "ruff --select ALL" in runs:
        ruff_runs = runs["ruff --select ALL"]
        ratio = _pair_ratio(cold, ruff_runs)
        warm = _pair_ratio(runs["zgcheck warm"], ruff_runs)
        print(f"\nzgcheck cold / ruff: {ratio:.2f}x ({_goal(ratio, GOALS['cold'])})")
        print(f"zgcheck warm / ruff cold: {warm:.2f}x ({_goal(warm, GOALS['warm'])})")
    speedup = _pair_ratio(runs["zgcheck cold -j1"], cold)
    print(f"-j1 / -j{jobs} wall: {speedup:.2f}x faster with -j{jobs} ({_goal(speedup, GOALS['jobs'], True)})")
    rss = max(r["rss_mb"] for r in cold)
    print(f"largest zgcheck process: {rss:.0f} MB ({_goal(rss, GOALS['rss_mb'])})")
    if file_times:
        _slowest(tree, top)
    sys.stdout.flush()


def _slowest(tree: str, top: int) -> None:
    """Each file checked alone, serially, in one fresh process (what one file costs). The
    imports a process pays once (LibCST, the analysis modules) are paid before the first
    file, not charged to whichever file happens to need them first."""
    code = (
        "import json, os, sys, time\n"
        "import libcst, zgcheck.loops, zgcheck.ordering, zgcheck.rules, zgcheck.fixes  # once per process\n"
        "from zgcheck.runner import check_file\n"
        "from zgcheck.settings import Settings\n"
        "s = Settings(); out = []\n"
        "for folder, _, names in os.walk(sys.argv[1]):\n"
        "    for n in names:\n"
        "        if n.endswith('.py'):\n"
        "            p = os.path.join(folder, n); t = time.perf_counter(); r = check_file(p, s)\n"
        "            out.append((time.perf_counter() - t, p, r.parsed))\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, tree], capture_output=True, text=True, check=True)
    times = sorted(json.loads(done.stdout), reverse=True)
    worst = times[0][0] if times else 0.0
    print(f"\nslowest files, each checked alone ({_goal(worst, GOALS['file_s'])}); "
          f"{sum(t for t, _, _ in times):.1f} s for all {len(times):,}:")
    for seconds, path, parsed in times[:top]:
        print(f"  {seconds:6.3f} s  {os.path.relpath(path, tree)}{'' if parsed else '  (byte prefilter)'}")


def bench_one_file(reps: int) -> None:
    """Pre-commit: one realistic training script, against the cost of importing LibCST."""
    folder = tempfile.mkdtemp(prefix="zgcheck-bench-one-")
    path = os.path.join(folder, "train.py")
    # A regular `pip install` writes zgcheck's bytecode, as it did LibCST's; an editable
    # install under PYTHONDONTWRITEBYTECODE would recompile every module on every run.
    import zgcheck

    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.dirname(zgcheck.__file__)], check=False,
                   stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""})
    with open(path, "w", encoding="utf-8") as out:
        out.write(large_training_module(random.Random(11), 800))
    commands = {
        "python -c 'import libcst'": [sys.executable, "-c", "import libcst"],
        "zgcheck check --no-cache train.py": [sys.executable, "-m", "zgcheck", "check", "--no-cache", path],
    }
    ruff = _tool("ruff")
    if ruff:
        commands["ruff check --select ALL train.py"] = [ruff, "check", "--no-cache", "--select", "ALL", path]
    runs = _alternate(commands, max(reps, 5))
    print(f"\n### One file (pre-commit): an 800-line training script, load average {_load()}\n")
    print("| command | wall (median) | CPU user+sys |")
    print("|---|---|---|")
    for name, values in runs.items():
        print(f"| {name} | {_median(values, 'wall'):.3f} s | {_median(values, 'cpu'):.3f} s |")
    ratio = _pair_ratio(runs["zgcheck check --no-cache train.py"], runs["python -c 'import libcst'"])
    print(f"\none file / import libcst: {ratio:.2f}x ({_goal(ratio, GOALS['one_file'])})")
    shutil.rmtree(folder, ignore_errors=True)


def torch_tree() -> str | None:
    """The installed torch package's folder, without importing torch."""
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or []) if spec else []
    return locations[0] if locations else None


def dense_tree(scripts: int, seed: int) -> str:
    """The standard library without its tests, plus generated training scripts."""
    stdlib = sysconfig.get_paths()["stdlib"]
    root = tempfile.mkdtemp(prefix="zgcheck-bench-dense-")
    skip = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}
    for folder, dirs, names in os.walk(stdlib):
        dirs[:] = [d for d in dirs if d not in skip]
        for name in names:
            if name.endswith(".py"):
                target = os.path.join(root, "stdlib", os.path.relpath(os.path.join(folder, name), stdlib))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copyfile(os.path.join(folder, name), target)
    rng = random.Random(seed)
    os.makedirs(os.path.join(root, "training"))
    for index in range(scripts):
        with open(os.path.join(root, "training", f"train_{index:03d}.py"), "w", encoding="utf-8") as out:
            out.write(large_training_module(rng))
    return root


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"


def _describe() -> None:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            model = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    from importlib.metadata import version

    import libcst  # noqa: F401 - for its version

    ruff = _tool("ruff")
    ruff_version = subprocess.run([ruff, "--version"], check=False, capture_output=True, text=True).stdout.strip() if ruff else "not installed"
    print(f"{time.strftime('%Y-%m-%d')}; {model}, {os.cpu_count()} cores; load average {_load()}")
    print(f"python {sys.version.split()[0]}, zgcheck {version('zgcheck')}, libcst {version('libcst')}, {ruff_version}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trees", default="torch,dense", help="comma-separated: torch, dense")
    parser.add_argument("--reps", type=int, default=3, help="alternating rounds per tree (after one warm-up round)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes of the parallel runs")
    parser.add_argument("--scripts", type=int, default=60, help="generated training scripts in the dense tree")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--top", type=int, default=5, help="slowest files to list")
    parser.add_argument("--no-file-times", action="store_true", help="skip timing each file alone")
    parser.add_argument("--skip-one-file", action="store_true")
    args = parser.parse_args()
    _describe()
    if not args.skip_one_file:
        bench_one_file(args.reps)
    for name in filter(None, args.trees.split(",")):  # --trees "": only the one-file case
        if name == "torch":
            tree = torch_tree()
            if tree is None:
                print("\n### torch: skipped, torch is not installed in this environment (pip install torch)")
                continue
            bench_tree("torch package", tree, args.reps, args.jobs, not args.no_file_times, args.top)
        elif name == "dense":
            tree = dense_tree(args.scripts, args.seed)
            try:
                bench_tree(f"stdlib + {args.scripts} generated training scripts", tree, args.reps, args.jobs,
                           not args.no_file_times, args.top)
            finally:
                shutil.rmtree(tree, ignore_errors=True)
        else:
            parser.error(f"unknown tree {name!r}")


if __name__ == "__main__":
    main()
