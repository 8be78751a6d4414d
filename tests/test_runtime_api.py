"""zgcheck.runtime's entry points: watch() / enable() / disable() / report(), warnings, the
`python -m zgcheck.runtime` runner, its output formats and exit codes; torch stays optional."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings

import pytest

from runtime_helpers import ROOT

BUGGY = """\
import sys
import torch
torch.manual_seed(0)
model = torch.nn.Linear(3, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
print("argv", sys.argv[1:], __name__)
for i in range(5):
    loss = model(torch.randn(4, 3)).pow(2).mean()
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
"""


def _imports(*args: str) -> str:
    """Every module a fresh interpreter imports to run ``args`` (from -X importtime)."""
    result = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True, text=True, cwd=ROOT)
    return result.stderr


def test_importing_runtime_and_running_the_linter_never_import_torch():
    assert " torch\n" not in _imports("-c", "import zgcheck.runtime")
    log = _imports("-m", "zgcheck", "check", "--no-cache", "fixtures/zg002/tutorial_seed.py")
    assert "zgcheck.runner" in log and " torch\n" not in log and "zgcheck.runtime" not in log


torch = pytest.importorskip("torch", reason="zgcheck.runtime needs torch: pip install torch==2.13.0")

import zgcheck.runtime as runtime  # noqa: E402
from zgcheck.runtime.__main__ import main  # noqa: E402


def _train(bug: bool, steps: int = 4) -> None:
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        model(torch.randn(4, 3)).sum().backward()
        if bug:
            optimizer.zero_grad()
        optimizer.step()
        optimizer.zero_grad()


def test_watch_reports_after_the_block_and_warns_once_per_site():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with runtime.watch():
            assert runtime.is_enabled()
            _train(bug=True)
            _train(bug=False)
    assert not runtime.is_enabled()
    [finding] = runtime.report()
    assert (finding.code, finding.kind, finding.count, finding.filename) == ("ZG002", "wiped", 4, __file__)
    gradient_warnings = [w for w in caught if issubclass(w.category, runtime.GradientWarning)]
    assert len(gradient_warnings) == 1 and gradient_warnings[0].filename == __file__
    assert gradient_warnings[0].lineno == finding.row


def test_enable_disable_nest_and_leave_torch_as_it_was():
    originals = (torch.autograd.backward, torch.optim.Optimizer.zero_grad, torch.nn.Module.zero_grad,
                 torch.amp.GradScaler.step)
    model = torch.nn.Linear(2, 1)
    runtime.enable(warn=False)
    runtime.enable(warn=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model(torch.randn(2, 2)).sum().backward()
    optimizer.step()
    runtime.disable()
    assert runtime.is_enabled()
    runtime.disable()
    assert not runtime.is_enabled()
    assert (torch.autograd.backward, torch.optim.Optimizer.zero_grad, torch.nn.Module.zero_grad,
            torch.amp.GradScaler.step) == originals
    assert not model.weight._backward_hooks and not model.weight._post_accumulate_grad_hooks
    runtime.disable()  # one too many: harmless


def test_a_new_session_starts_empty():
    with runtime.watch(warn=False):
        _train(bug=True)
    assert runtime.report()
    with runtime.watch(warn=False):
        _train(bug=False)
    assert runtime.report() == []
    assert runtime.stats() == {"steps": 4, "backwards": 4, "optimizers": 1}


@pytest.fixture
def script(tmp_path, monkeypatch):
    """A buggy script, and a process whose argv and path the runner may change."""
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "train.py"
    path.write_text(BUGGY)
    return path


def test_runner_runs_the_script_as_main_with_its_argv(script, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main([str(script), "--lr", "3"]) == 0
    out = capsys.readouterr().out
    assert "argv ['--lr', '3'] __main__" in out
    assert "train.py:11:5: ZG002 [wiped] optimizer.zero_grad() (line 10) cleared the gradients" in out
    assert "← backward" in out and "← zero" in out and "← step" in out
    assert "1 gradient problem (wiped x1); 5 steps of 1 optimizer, 5 backward passes checked." in out


def test_runner_json_output_file_and_fail(script, tmp_path):
    report = tmp_path / "report.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["--output-format", "json", "--output-file", str(report), "--fail", str(script)])
    assert code == 1
    [item] = json.loads(report.read_text())
    assert (item["code"], item["kind"], item["count"], item["location"]["row"]) == ("ZG002", "wiped", 5, 11)
    assert item["filename"] == str(script)
    assert {(r["label"], r["location"]["row"], r["message"]) for r in item["related"]} == {
        ("backward", 9, "loss.backward()"), ("zero", 10, "optimizer.zero_grad()")}


def test_runner_keeps_the_scripts_exit_code_and_reports_a_crash(script, capsys):
    script.write_text(BUGGY + "raise SystemExit(3)\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["--fail", str(script)]) == 3
        script.write_text(BUGGY + "1 / 0\n")
        assert main([str(script)]) == 1
    captured = capsys.readouterr()
    assert "ZeroDivisionError" in captured.err and "runpy" not in captured.err
    assert "ZG002" in captured.out


def test_runner_from_the_command_line(tmp_path):
    (tmp_path / "clean.py").write_text(textwrap.dedent("""\
        import torch
        model = torch.nn.Linear(2, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for i in range(3):
            optimizer.zero_grad()
            model(torch.randn(2, 2)).sum().backward()
            optimizer.step()
        raise SystemExit(4)
    """))
    result = subprocess.run([sys.executable, "-m", "zgcheck.runtime", "--fail", "clean.py"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 4
    assert "no gradient problems (3 steps of 1 optimizer, 3 backward passes checked)" in result.stdout
    missing = subprocess.run([sys.executable, "-m", "zgcheck.runtime", "nope.py"], capture_output=True, text=True,
                             cwd=tmp_path)
    assert missing.returncode == 2 and "can't open file" in missing.stderr


def test_an_internal_error_stops_the_checks_but_never_the_training(monkeypatch):
    from zgcheck.runtime.ledger import Ledger

    def broken(*args, **kwargs):
        raise KeyError("boom")

    monkeypatch.setattr(Ledger, "after", broken)
    with pytest.warns(RuntimeWarning, match="stopped checking after an internal error: KeyError"):
        with runtime.watch(warn=False):
            _train(bug=True)
    assert runtime.report() == []


def test_runner_runs_a_module(script, tmp_path, capsys):
    (tmp_path / "trainmod.py").write_text(BUGGY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["-m", "trainmod", "x"]) == 0
    out = capsys.readouterr().out
    assert "argv ['x'] __main__" in out and "trainmod.py:11:5: ZG002" in out
