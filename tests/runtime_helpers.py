"""Run small training scripts under zgcheck.runtime, in this process (tests of the runtime checks)."""
from __future__ import annotations

import contextlib
import io
import runpy
import textwrap
import warnings
from pathlib import Path

import zgcheck.runtime as runtime

ROOT = Path(__file__).resolve().parent.parent
KINDS = {"ZG001": "stale", "ZG003": "stale", "ZG005": "stale", "ZG006": "stale",
         "ZG002": "wiped", "ZG004": "wiped", "ZG007": "leak"}


def run_file(path: Path, exact: bool = False) -> list[runtime.Finding]:
    """Run ``path`` as __main__ with the checks on; its output is swallowed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", runtime.GradientWarning)
        with runtime.watch(exact=exact), contextlib.redirect_stdout(io.StringIO()):
            runpy.run_path(str(path), run_name="__main__")
    return runtime.report()


def run_code(tmp_path: Path, *parts: str, exact: bool = False, name: str = "train.py") -> list[runtime.Finding]:
    """Run a script given as pieces of (indented) text; ``import torch`` and a seed come first."""
    path = tmp_path / name
    path.write_text("import torch\nfrom torch import nn\ntorch.manual_seed(0)\n"
                    + "".join(textwrap.dedent(part) for part in parts))
    return run_file(path, exact=exact)


def codes(findings: list[runtime.Finding]) -> set[str]:
    return {f.code for f in findings}


def line_of(tmp_path: Path, text: str, name: str = "train.py") -> int:
    """The line number of the first line of the script that contains ``text``."""
    lines = (tmp_path / name).read_text().splitlines()
    return next(number for number, line in enumerate(lines, start=1) if text in line)


def run_code_isolated(tmp_path: Path, *parts: str, timeout: float = 300) -> set[str]:
    """Like :func:`run_code`, in a fresh interpreter (`python -m zgcheck.runtime -o json`),
    for torch.distributed: a process group torn down inside this long-lived test process
    can deadlock (a Reducer's destructor joining gloo's threads while holding the GIL,
    seen once every few full runs). The codes reported are returned."""
    import json
    import subprocess
    import sys

    import pytest

    path = tmp_path / "train.py"
    path.write_text("import torch\nfrom torch import nn\ntorch.manual_seed(0)\n"
                    + "".join(textwrap.dedent(part) for part in parts))
    report = tmp_path / "report.json"
    try:
        done = subprocess.run([sys.executable, "-m", "zgcheck.runtime", "-o", "json", "--output-file", str(report),
                               str(path)], capture_output=True, text=True, timeout=timeout, cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the script did not finish in {timeout:.0f} s (torch.distributed hung)")
    assert done.returncode == 0, done.stderr[-2000:]
    return {finding["code"] for finding in json.loads(report.read_text())}
