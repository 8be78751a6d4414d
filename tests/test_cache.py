"""The result cache: hits, misses, invalidation, and distrust of anything it did not write."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from zgcheck import runner
from zgcheck.cache import Cache, content_hash
from zgcheck.cli import main
from zgcheck.settings import Settings
from test_cli import BUG, CLEAN


@pytest.fixture
def counted(monkeypatch):
    """Count the files that really get analysed (serial runs call analyse_text in-process)."""
    calls: list[str] = []
    real = runner.analyse_text

    def spy(text, filename, settings, used=None):
        calls.append(filename)
        return real(text, filename, settings, used)

    monkeypatch.setattr(runner, "analyse_text", spy)
    return calls


def check(paths, cache_dir, settings=None):
    return list(runner.run([str(p) for p in paths], settings or Settings(), jobs=1, cache_dir=str(cache_dir)))


def test_second_run_is_answered_from_the_cache(tmp_path, counted):
    bug, clean = tmp_path / "bug.py", tmp_path / "clean.py"
    bug.write_text(BUG)
    clean.write_text(CLEAN)
    first = check([bug, clean], tmp_path / "c")
    assert len(counted) == 2
    second = check([bug, clean], tmp_path / "c")
    assert len(counted) == 2  # nothing analysed again
    assert second == first
    assert second[0].diagnostics[0].code == "ZG002"
    assert second[0].source_lines  # the code frame still has its lines


def test_changed_content_is_checked_again(tmp_path, counted):
    path = tmp_path / "train.py"
    path.write_text(CLEAN)
    assert not check([path], tmp_path / "c")[0].diagnostics
    path.write_text(BUG)
    assert check([path], tmp_path / "c")[0].diagnostics
    assert len(counted) == 2


def test_changed_settings_miss_the_cache(tmp_path, counted):
    path = tmp_path / "train.py"
    path.write_text(BUG)
    check([path], tmp_path / "c")
    result = check([path], tmp_path / "c", Settings.from_options(ignore=("ZG002",)))
    assert len(counted) == 2 and not result[0].diagnostics
    check([path], tmp_path / "c")
    assert len(counted) == 2  # the first settings' entry is still there


def test_same_bytes_at_another_path_report_that_path(tmp_path, counted):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text(BUG)
    b.write_text(BUG)
    results = check([a, b], tmp_path / "c")
    assert [d.filename for r in results for d in r.diagnostics] == [str(a), str(b)]


def test_problems_are_not_cached(tmp_path, counted):
    path = tmp_path / "broken.py"
    path.write_text("def broken(:\n    loss.backward()\n    opt.step()\n")
    check([path], tmp_path / "c")
    check([path], tmp_path / "c")
    assert len(counted) == 2


def index_file(cache_dir: Path) -> Path:
    (found,) = [p for p in cache_dir.iterdir() if p.suffix == ".json"]
    return found


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda text: text[: len(text) // 2], id="truncated"),
        pytest.param(lambda text: "\x00garbage{{{", id="corrupted"),
        pytest.param(lambda text: json.dumps([1, 2, 3]), id="foreign-json"),
        pytest.param(lambda text: text.replace('"key":"', '"key":"x'), id="other-key"),
        pytest.param(lambda text: re_entries(text, {"code": 5}), id="wrong-field-types"),
        pytest.param(lambda text: re_entries(text, "not a list"), id="wrong-entry-shape"),
    ],
)
def test_a_damaged_cache_is_ignored(tmp_path, counted, damage):
    path = tmp_path / "train.py"
    path.write_text(BUG)
    expected = check([path], tmp_path / "c")
    index = index_file(tmp_path / "c")
    index.write_text(damage(index.read_text()))
    assert check([path], tmp_path / "c") == expected
    assert len(counted) == 2  # analysed again rather than trusting the file
    assert check([path], tmp_path / "c") == expected  # and the index was rewritten


def re_entries(text: str, value) -> str:
    """Keep the header, replace every entry's diagnostics with ``value``."""
    data = json.loads(text)
    data["entries"] = {k: ([value] if isinstance(value, dict) else value) for k in data["entries"]}
    return json.dumps(data)


def test_cache_folder_has_a_gitignore_and_atomic_writes_leave_no_temp_files(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(BUG)
    check([path], tmp_path / "c")
    assert (tmp_path / "c" / ".gitignore").read_text().splitlines()[-1] == "*"
    assert sorted(p.suffix for p in (tmp_path / "c").iterdir()) == ["", ".json"]


def test_unwritable_cache_only_slows_down(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(BUG)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert check([path], blocker)[0].diagnostics


def test_cli_default_folder_no_cache_and_cache_dir(tmp_path, monkeypatch):
    (tmp_path / "train.py").write_text(BUG)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ZGCHECK_CACHE_DIR")
    cli = CliRunner()
    assert cli.invoke(main, ["check", "--no-cache", "train.py"]).exit_code == 1
    assert not (tmp_path / ".zgcheck_cache").exists()
    assert cli.invoke(main, ["check", "train.py"]).exit_code == 1
    assert (tmp_path / ".zgcheck_cache" / ".gitignore").exists()
    assert cli.invoke(main, ["check", "--cache-dir", "elsewhere", "train.py"]).exit_code == 1
    assert index_file(tmp_path / "elsewhere")


def test_hash_is_of_the_bytes():
    assert content_hash(b"a") != content_hash(b"b")
    assert Cache(os.devnull + "-missing", Settings()).get(content_hash(b"a"), "x.py") is None


def test_every_diagnostic_field_survives_the_cache(tmp_path):
    """A field added to Diagnostic must be stored too, or cached runs would lose it."""
    from dataclasses import fields

    from zgcheck.diagnostics import Diagnostic, Edit, Fix, Location, RelatedEvent

    loc = Location(3, 5)
    diag = Diagnostic("ZG002", "m", "a.py", loc, Location(3, 9), "opt", (RelatedEvent("zero", 3),),
                      Fix("safe", "move it", (Edit("x", loc, loc),)), cell=2)
    assert all(getattr(diag, f.name) != f.default for f in fields(Diagnostic)), "set every field above"
    cache = Cache(str(tmp_path), Settings())
    cache.put("k", (diag,))
    cache.save()
    assert Cache(str(tmp_path), Settings()).get("k", "a.py") == (diag,)


HELPER_ZEROES = "def clear_grads(*optimizers):\n    for o in optimizers:\n        o.zero_grad()\n"
HELPER_FORGETS = "def clear_grads(*optimizers):\n    pass\n"
CALLER = (
    "import torch\nfrom train_utils import clear_grads\n\n"
    "model = torch.nn.Linear(2, 1)\noptimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
    "for x in torch.randn(8, 4, 2):\n    clear_grads(optimizer)\n"
    "    model(x).sum().backward()\n    optimizer.step()\n"
)


def test_editing_a_helper_rechecks_its_callers(tmp_path, counted):
    (tmp_path / "pyproject.toml").write_text("")
    helper, caller = tmp_path / "train_utils.py", tmp_path / "train.py"
    helper.write_text(HELPER_ZEROES)
    caller.write_text(CALLER)
    assert [r.diagnostics for r in check([caller], tmp_path / "c")] == [()]
    assert [r.diagnostics for r in check([caller], tmp_path / "c")] == [()]
    assert counted == [str(caller)]  # the second run was a hit
    helper.write_text(HELPER_FORGETS)
    third = check([caller], tmp_path / "c")
    assert [d.code for d in third[0].diagnostics] == ["ZG001"]
    assert counted == [str(caller), str(caller)]


STEP_HELPER = (
    "def backward_and_step(loss, optimizer):\n"
    "    loss.backward()\n"
    "    optimizer.step()\n"
)
ZEROING_CALLER = (
    "import torch\nfrom optim_utils import backward_and_step\n\n"
    "model = torch.nn.Linear(2, 1)\noptimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
    "for x in torch.randn(8, 4, 2):\n    optimizer.zero_grad()\n"
    "    backward_and_step(model(x).sum(), optimizer)\n"
)


def test_a_new_caller_of_a_step_helper_rechecks_the_helper(tmp_path, counted):
    # The helper is reported while nobody calls it; a caller written later that zeroes
    # makes it silent, with the cache as without it (the helper's bytes did not change).
    (tmp_path / "pyproject.toml").write_text("")
    helper = tmp_path / "optim_utils.py"
    helper.write_text(STEP_HELPER)
    first = check([helper], tmp_path / "c")
    assert [d.code for d in first[0].diagnostics] == ["ZG001"]
    assert check([helper], tmp_path / "c") == first
    assert counted == [str(helper)]  # a hit while the project is unchanged
    (tmp_path / "train.py").write_text(ZEROING_CALLER)
    uncached = list(runner.run([str(helper)], Settings(), jobs=1, cache_dir=None))
    assert uncached[0].diagnostics == ()
    assert check([helper], tmp_path / "c")[0].diagnostics == ()
