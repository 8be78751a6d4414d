"""[tool.zgcheck] from the nearest pyproject.toml, --config, --isolated and CLI overrides."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from zgcheck.cli import main
from zgcheck.config import Resolver, nearest_config
from zgcheck.settings import Options, SettingsError, build_settings

from samples import BUG as ZG002

# ZG004: a reset every micro-batch defeats the accumulation the step relies on.
ZG004 = """import torch
model = torch.nn.Linear(1, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for i in range(8):
    optimizer.zero_grad()
    loss = model(torch.ones(1)).sum()
    loss.backward()
    if (i + 1) % 4 == 0:
        optimizer.step()
"""


def invoke(*args: str, cwd=None):
    runner = CliRunner()
    return runner.invoke(main, list(args))


def codes(output: str) -> list[str]:
    return sorted(line.split(": ")[1].split()[0] for line in output.splitlines() if ": ZG" in line)


def pyproject(folder, body: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text("[project]\nname = 'x'\n\n[tool.zgcheck]\n" + body)


@pytest.fixture
def monorepo(tmp_path):
    """A repo whose sub-project ignores ZG004; the same bug elsewhere is reported."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "other").mkdir()
    pyproject(tmp_path / "sub", 'ignore = ["ZG004"]\n')
    (tmp_path / "sub" / "train.py").write_text(ZG004)
    (tmp_path / "other" / "train.py").write_text(ZG004)
    return tmp_path


def test_sub_project_config_applies_only_under_it(monorepo):
    result = invoke("check", "-q", "-o", "concise", "--no-color", str(monorepo))
    assert result.exit_code == 1
    lines = [l for l in result.output.splitlines() if "ZG004" in l]
    assert len(lines) == 1 and "other" in lines[0]


def test_nearest_config_wins(monorepo):
    pyproject(monorepo, 'select = ["ZG001"]\n')
    assert nearest_config(str(monorepo / "sub")) == str(monorepo / "sub" / "pyproject.toml")
    result = invoke("check", "-o", "concise", str(monorepo))
    # The root selects only ZG001 (nothing in other/); sub ignores ZG004 (nothing there).
    assert result.exit_code == 0, result.output


def test_pyproject_without_table_is_skipped(tmp_path):
    pyproject(tmp_path, 'ignore = ["ZG002"]\n')
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "pyproject.toml").write_text("[project]\nname = 'pkg'\n")
    (tmp_path / "pkg" / "train.py").write_text(ZG002)
    assert invoke("check", str(tmp_path / "pkg")).exit_code == 0


def test_unknown_key_exits_2_with_suggestion(tmp_path):
    pyproject(tmp_path, 'extend-selct = ["ZG001"]\n')
    (tmp_path / "train.py").write_text(ZG002)
    result = invoke("check", str(tmp_path))
    assert result.exit_code == 2
    assert "unknown key `extend-selct`" in result.output and "did you mean 'extend-select'" in result.output


def test_unknown_code_in_config_exits_2_with_suggestion(tmp_path):
    pyproject(tmp_path, 'ignore = ["ZG0002"]\n')
    (tmp_path / "train.py").write_text(ZG002)
    result = invoke("check", str(tmp_path))
    assert result.exit_code == 2
    assert "unknown rule code 'ZG0002'" in result.output and "did you mean 'ZG002'" in result.output
    assert "pyproject.toml" in result.output


@pytest.mark.parametrize("body, message", [
    ("select = 'ZG001'\n", "must be a list of strings"),
    ("force-exclude = 1\n", "must be true or false"),
    ("per-file-ignores = ['x']\n", "must be a table"),
    ("select = [\n", "invalid TOML"),
], ids=["select-not-list", "bool", "per-file-table", "toml"])
def test_bad_values_exit_2(tmp_path, body, message):
    pyproject(tmp_path, body)
    (tmp_path / "train.py").write_text(ZG002)
    result = invoke("check", str(tmp_path))
    assert result.exit_code == 2 and message in result.output


def test_cli_flags_override_the_file(tmp_path):
    pyproject(tmp_path, 'ignore = ["ZG002"]\n')
    (tmp_path / "train.py").write_text(ZG002)
    assert invoke("check", str(tmp_path)).exit_code == 0
    assert invoke("check", "--select", "ZG002", str(tmp_path)).exit_code == 1
    assert invoke("check", "--isolated", str(tmp_path)).exit_code == 1


def test_extend_select_adds_to_the_file_selection(tmp_path):
    pyproject(tmp_path, 'select = ["ZG001"]\nextend-select = ["ZG002"]\n')
    (tmp_path / "train.py").write_text(ZG002)
    assert invoke("check", str(tmp_path)).exit_code == 1
    assert invoke("check", "--select", "ZG001", str(tmp_path)).exit_code == 0


def test_explicit_config_is_used_for_every_file(tmp_path):
    pyproject(tmp_path / "conf", 'ignore = ["ZG002"]\n')
    (tmp_path / "train.py").write_text(ZG002)
    assert invoke("check", str(tmp_path / "train.py")).exit_code == 1
    assert invoke("check", "--config", str(tmp_path / "conf" / "pyproject.toml"), str(tmp_path / "train.py")).exit_code == 0
    (tmp_path / "empty.toml").write_text("[project]\n")
    assert invoke("check", "--config", str(tmp_path / "empty.toml"), str(tmp_path)).exit_code == 2


def test_per_file_ignores(tmp_path):
    pyproject(tmp_path, '[tool.zgcheck.per-file-ignores]\n"legacy/*.py" = ["ZG002"]\n')
    for folder in ("legacy", "new"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "train.py").write_text(ZG002)
    result = invoke("check", "-q", "-o", "concise", str(tmp_path))
    lines = result.output.splitlines()
    assert len(lines) == 1 and "new" in lines[0] and ": ZG002 " in lines[0]


def test_exclude_extend_exclude_and_force_exclude(tmp_path):
    pyproject(tmp_path, 'extend-exclude = ["generated/"]\nexclude = ["old_*.py"]\n')
    (tmp_path / "generated").mkdir()
    (tmp_path / "generated" / "train.py").write_text(ZG002)
    (tmp_path / "old_train.py").write_text(ZG002)
    assert invoke("check", str(tmp_path)).exit_code == 0
    # A file named explicitly is checked, unless force-exclude says otherwise.
    assert invoke("check", str(tmp_path / "old_train.py")).exit_code == 1
    assert invoke("check", "--force-exclude", str(tmp_path / "old_train.py")).exit_code == 0
    assert invoke("check", "--exclude", "nothing", str(tmp_path)).exit_code == 1


def test_respect_gitignore_false(tmp_path):
    pyproject(tmp_path, "respect-gitignore = false\n")
    (tmp_path / ".gitignore").write_text("ignored/\n")
    (tmp_path / "ignored").mkdir()
    (tmp_path / "ignored" / "train.py").write_text(ZG002)
    assert invoke("check", str(tmp_path)).exit_code == 1
    assert invoke("check", "--respect-gitignore", str(tmp_path)).exit_code == 0


# `solver` is built by a house factory and never zeroed: only the factory name tells.
HOUSE_FACTORY = """import torch
from mylib import build_solver
model = torch.nn.Linear(1, 1)
solver = build_solver(model)
for i in range(3):
    loss = model(torch.ones(1)).sum()
    loss.backward()
    solver.step()
"""
# `model_opt` is a house wrapper that zeroes inside its own step, like a DeepSpeed engine.
HOUSE_ENGINE = """import torch
from mylib import Wrapper
model = torch.nn.Linear(1, 1)
model_opt = Wrapper(model)
for i in range(3):
    loss = model(torch.ones(1)).sum()
    model_opt.backward(loss)
    model_opt.step()
"""


def test_project_teaches_factories_and_engines(tmp_path):
    (tmp_path / "a.py").write_text(HOUSE_FACTORY)
    (tmp_path / "b.py").write_text(HOUSE_ENGINE)
    isolated = invoke("check", "-q", "-o", "concise", str(tmp_path)).output.splitlines()
    assert [l.split("/")[-1].split(" ")[:2] for l in isolated] == [["b.py:8:5:", "ZG001"]]
    pyproject(tmp_path, 'optimizer-factories = ["build_solver"]\nzeroing-engines = ["model_opt"]\n')
    taught = invoke("check", "-q", "-o", "concise", str(tmp_path)).output.splitlines()
    assert [l.split("/")[-1].split(" ")[:2] for l in taught] == [["a.py:8:5:", "ZG001"]]


def test_settings_layers_fold_like_ruff():
    file = Options(select=("ZG00",), ignore=("ZG004",), source="file")
    assert "ZG004" not in build_settings(file).select
    assert "ZG004" in build_settings(file, Options(select=("ZG004",))).select
    assert build_settings(file, Options(ignore=("ZG1",))).select == ("ZG001", "ZG002", "ZG003", "ZG005", "ZG006", "ZG007")
    with pytest.raises(SettingsError, match="did you mean 'ZG005'"):
        build_settings(Options(select=("ZG05",)))


def test_config_lookup_is_cached_per_directory(tmp_path, monkeypatch):
    import zgcheck.config as config

    pyproject(tmp_path, 'ignore = ["ZG004"]\n')
    resolver = Resolver()
    calls = []
    real = config.build_settings
    monkeypatch.setattr(config, "build_settings", lambda *a, **k: calls.append(1) or real(*a, **k))
    for n in range(50):
        resolver.for_path(str(tmp_path / f"f{n}.py"))
    assert len(calls) == 1
