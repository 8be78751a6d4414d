"""Run-level flags: stdin, --statistics, --exit-zero, --quiet, --output-file, progress, baseline."""
from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from zgcheck.cli import main
from samples import BUG

# A second, different bug: another optimizer whose gradients are never reset.
NEW_BUG = """
critic_opt = torch.optim.Adam(model.parameters())
for i in range(3):
    model(torch.ones(1)).sum().backward()
    critic_opt.step()
"""
ZGCHECK = [sys.executable, "-m", "zgcheck.cli"]


def invoke(*args: str, stdin: str | None = None):
    return CliRunner().invoke(main, list(args), input=stdin)


def test_stdin_through_a_real_pipe(tmp_path):
    (tmp_path / "train.py").write_text(BUG)
    shell = f"cat train.py | {sys.executable} -m zgcheck.cli check --no-color --stdin-filename train.py -"
    done = subprocess.run(shell, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith("train.py:7:5: ZG002 ")


def test_stdin_uses_the_configuration_near_the_given_name(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "pyproject.toml").write_text('[tool.zgcheck]\nignore = ["ZG002"]\n')
    assert invoke("check", "--stdin-filename", str(tmp_path / "sub" / "train.py"), "-", stdin=BUG).exit_code == 0
    assert invoke("check", "--stdin-filename", str(tmp_path / "train.py"), "-", stdin=BUG).exit_code == 1
    assert invoke("check", "-", stdin=BUG).exit_code == 1
    assert invoke("check", "-", str(tmp_path), stdin=BUG).exit_code == 2


def test_exit_zero_quiet_and_output_file(tmp_path):
    (tmp_path / "train.py").write_text(BUG)
    result = invoke("check", "--exit-zero", "-q", "-o", "concise", str(tmp_path))
    assert result.exit_code == 0
    assert result.output.count("\n") == 1 and ": ZG002 " in result.output
    out = tmp_path / "report.json"
    result = invoke("check", "-o", "json", "--output-file", str(out), str(tmp_path))
    assert result.exit_code == 1 and result.output == ""
    assert json.loads(out.read_text())[0]["code"] == "ZG002"


def test_statistics(tmp_path):
    (tmp_path / "a.py").write_text(BUG)
    (tmp_path / "b.py").write_text(BUG + NEW_BUG)
    result = invoke("check", "--statistics", str(tmp_path))
    assert result.exit_code == 1
    assert result.output.splitlines() == ["2\tZG002\t[*] zero-grad-before-step", "1\tZG001\t[*] missing-zero-grad"]
    as_json = json.loads(invoke("check", "--statistics", "-o", "json", str(tmp_path)).output)
    assert as_json[0] == {"count": 2, "code": "ZG002", "name": "zero-grad-before-step", "fixable": True}


def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path):
    for n in range(210):
        (tmp_path / f"f{n:03}.py").write_text("x = 1\n")
    done = subprocess.run(ZGCHECK + ["check", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == ""


def test_progress_bar_wraps_big_runs_on_a_terminal(monkeypatch):
    from zgcheck import cli

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    files = [f"f{n}.py" for n in range(cli.PROGRESS_MIN_FILES)]
    assert list(cli._progress(files, iter(range(3)))) == [0, 1, 2]
    assert list(cli._progress(files[:5], iter(range(3)))) == [0, 1, 2]


def test_baseline_survives_edits_above_and_reports_new_bugs(tmp_path):
    train = tmp_path / "train.py"
    train.write_text(BUG)
    baseline = tmp_path / "zgcheck-baseline.json"
    result = invoke("check", "--write-baseline", str(baseline), str(train))
    assert result.exit_code == 0 and baseline.exists()
    assert invoke("check", "--baseline", str(baseline), str(train)).exit_code == 0
    # Lines inserted above the old finding move it, but it keeps its identity.
    train.write_text('"""Training script."""\nimport os\n\n\n' + BUG)
    assert invoke("check", "--baseline", str(baseline), str(train)).exit_code == 0
    # A new bug is reported, the old one still is not.
    train.write_text('"""Training script."""\nimport os\n\n\n' + BUG + NEW_BUG)
    result = invoke("check", "-q", "-o", "concise", "--baseline", str(baseline), str(train))
    assert result.exit_code == 1
    assert [l.split(": ")[1].split()[0] for l in result.output.splitlines()] == ["ZG001"]
    # Fixing nothing but duplicating the old bug is a new finding too (counts, not sets).
    train.write_text(BUG + BUG.split("\n", 3)[3])
    assert invoke("check", "--baseline", str(baseline), str(train)).exit_code == 1


def test_bad_baseline_is_a_usage_error(tmp_path):
    (tmp_path / "train.py").write_text(BUG)
    (tmp_path / "bad.json").write_text("{}")
    assert invoke("check", "--baseline", str(tmp_path / "bad.json"), str(tmp_path)).exit_code == 2
    assert invoke("check", "--baseline", str(tmp_path / "missing.json"), str(tmp_path)).exit_code == 2


def test_fix_with_stdin_prints_the_fixed_code():
    result = CliRunner().invoke(main, ["check", "--fix", "--stdin-filename", "train.py", "-"], input=BUG)
    fixed = result.stdout
    assert "optimizer.zero_grad()" in fixed and fixed != BUG
    assert fixed.index("optimizer.zero_grad()") < fixed.index("loss.backward()") or fixed.index("optimizer.step()") < fixed.index("optimizer.zero_grad()")
