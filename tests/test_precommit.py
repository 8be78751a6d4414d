"""The pre-commit hook really runs: a buggy staged file fails, the fixed file passes.

pre-commit builds the hook's environment by installing this repository with pip, which
needs the package index; without it the test is skipped (with the reason), not failed.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from samples import BUG, CLEAN as FIXED

HERE = Path(__file__).resolve().parent
ENV_FAILURES = ("Installing environment", "An unexpected error has occurred")


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def env(tmp_path):
    values = dict(os.environ)
    values.update(
        PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"), GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com", PRE_COMMIT_COLOR="never",
    )
    return values


def try_repo(project: Path, env: dict) -> subprocess.CompletedProcess:
    root = git("rev-parse", "--show-toplevel", cwd=HERE)
    command = [sys.executable, "-m", "pre_commit", "try-repo", root, "zgcheck", "--all-files", "--verbose"]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=900)


def test_hook_fails_on_the_bug_and_passes_once_fixed(tmp_path, env):
    pytest.importorskip("pre_commit", reason="pre-commit is in the test extra")
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    project = tmp_path / "project"
    project.mkdir()
    git("init", "-q", cwd=project)
    (project / "train.py").write_text(BUG)
    git("add", "train.py", cwd=project)
    first = try_repo(project, env)
    output = first.stdout + first.stderr
    if first.returncode != 0 and "ZG002" not in output and all(s in output for s in ENV_FAILURES):
        pytest.skip(f"pre-commit could not create the hook environment (no package index?):\n{output[-2000:]}")
    assert first.returncode == 1, output
    assert "train.py:7:5: ZG002" in output
    (project / "train.py").write_text(FIXED)
    git("add", "train.py", cwd=project)
    second = try_repo(project, env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Passed" in second.stdout
