"""Fix pairs (exact output, idempotence, AST) and the safety net around writing files."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from zgcheck import check_source
from zgcheck.cli import main
from zgcheck.diagnostics import Edit, Fix, Location
from zgcheck.runner import fix_source
from zgcheck.settings import Settings

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "fix"
PAIRS = sorted(p for p in FIX.glob("*.py") if not p.name.endswith(".fixed.py"))


def fixed_path(path: Path) -> Path:
    return path.with_name(path.stem + ".fixed.py")


def test_every_rule_has_two_fix_pairs():
    for code in ("zg001", "zg002", "zg003", "zg004", "zg005", "zg006", "zg007"):
        assert len([p for p in PAIRS if p.name.startswith(code)]) >= 2, code


@pytest.mark.parametrize("path", PAIRS, ids=[p.name for p in PAIRS])
def test_fix_pair_exact_and_idempotent(path):
    before = path.read_text()
    expected = fixed_path(path).read_text()
    result = fix_source(before, str(path), Settings(), unsafe=True)
    assert result.refused == ""
    assert result.text == expected
    code = path.name[:5].upper()
    assert code in {d.code for d in result.fixed}
    assert check_source(expected, str(path)).diagnostics == ()
    again = fix_source(expected, str(path), Settings(), unsafe=True)
    assert again.text == expected and not again.fixed


def test_tutorial_fix_is_safe_and_cli_fixes_it(tmp_path):
    target = tmp_path / "train.py"
    target.write_text((FIX / "zg002_tutorial_seed.py").read_text())
    result = CliRunner().invoke(main, ["check", "--fix", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text() == (FIX / "zg002_tutorial_seed.fixed.py").read_text()
    assert CliRunner().invoke(main, ["check", str(target)]).exit_code == 0


def test_diff_writes_nothing(tmp_path):
    target = tmp_path / "train.py"
    original = (FIX / "zg002_tutorial_seed.py").read_bytes()
    target.write_bytes(original)
    result = CliRunner().invoke(main, ["check", "--diff", str(target)])
    assert result.exit_code == 1
    changed = [l for l in result.output.splitlines() if l[:1] in "+-" and not l.startswith(("+++", "---"))]
    assert changed and all("optimizer." in l or "# " in l for l in changed)
    assert target.read_bytes() == original


def test_unsafe_fix_needs_the_flag(tmp_path):
    # An optimizer known only by its name: the inserted zero is a judgement call.
    text = "for batch in loader:\n    loss(batch).backward()\n    optimizer.step()\n"
    target = tmp_path / "train.py"
    target.write_text(text)
    result = CliRunner().invoke(main, ["check", "--fix", "--no-color", str(target)])
    assert result.exit_code == 1 and target.read_text() == text
    assert "fixable with --fix --unsafe-fixes" in result.output
    result = CliRunner().invoke(main, ["check", "--fix", "--unsafe-fixes", str(target)])
    assert result.exit_code == 0
    assert target.read_text().endswith("    optimizer.step()\n    optimizer.zero_grad()\n")


def test_unprovable_fix_leaves_file_byte_identical(tmp_path, monkeypatch):
    target = tmp_path / "train.py"
    original = (FIX / "zg001_missing_zero.py").read_bytes()
    target.write_bytes(original)
    import zgcheck.fixes as fixes

    def broken(self, steps):  # a plan that would break the syntax
        return Fix("safe", "broken", (Edit("optimizer.step(\n", Location(steps[0].line, 1), Location(steps[0].line, 1)),))

    monkeypatch.setattr(fixes.FixPlanner, "zero_after_step", broken)
    result = CliRunner().invoke(main, ["check", "--fix", "--no-color", str(target)])
    assert target.read_bytes() == original
    assert "not fixed: the fixed code would not parse" in result.output
    assert result.exit_code == 1


def test_fix_keeps_crlf_bom_encoding_and_permissions(tmp_path):
    text = (FIX / "zg002_tutorial_seed.py").read_text()
    target = tmp_path / "train.py"
    target.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
    os.chmod(target, 0o750)
    CliRunner().invoke(main, ["check", "--fix", str(target)])
    data = target.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    assert b"\n" not in data.replace(b"\r\n", b"")
    expected = (FIX / "zg002_tutorial_seed.fixed.py").read_text().replace("\n", "\r\n").encode()
    assert data[3:] == expected
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o750


def test_fix_keeps_latin1_cookie(tmp_path):
    text = "# -*- coding: latin-1 -*-\n# café\n" + (FIX / "zg001_missing_zero.py").read_text()
    target = tmp_path / "train.py"
    target.write_bytes(text.encode("latin-1"))
    CliRunner().invoke(main, ["check", "--fix", str(target)])
    data = target.read_bytes()
    assert "café".encode("latin-1") in data and data.decode("latin-1").count("zero_grad()") == 1


def test_symlink_out_of_tree_is_not_written(tmp_path, monkeypatch):
    outside = tmp_path / "outside"
    inside = tmp_path / "inside"
    outside.mkdir()
    inside.mkdir()
    real = outside / "train.py"
    original = (FIX / "zg001_missing_zero.py").read_text()
    real.write_text(original)
    os.symlink(real, inside / "train.py")
    monkeypatch.chdir(inside)
    result = CliRunner().invoke(main, ["check", "--fix", "--no-color", "train.py"])
    assert real.read_text() == original
    assert "symlink to a file outside" in result.output


def test_file_deleted_before_fix_is_reported_not_crashed(tmp_path, monkeypatch):
    target = tmp_path / "train.py"
    target.write_text((FIX / "zg001_missing_zero.py").read_text())
    import zgcheck.runner as runner

    real_check = runner.check_file

    def check_then_delete(path, settings):
        result = real_check(path, settings)
        os.unlink(path)
        return result

    monkeypatch.setattr(runner, "check_file", check_then_delete)
    result = CliRunner().invoke(main, ["check", "--fix", "--no-color", str(target)])
    assert "not fixed: the file changed during the run" in result.output
    assert not target.exists()


def test_ascii_terminal_gets_ascii_frame(tmp_path):
    import subprocess
    import sys

    env = dict(os.environ, PYTHONIOENCODING="ascii")
    run = subprocess.run([sys.executable, "-m", "zgcheck.cli", "check", str(FIX / "zg002_tutorial_seed.py")],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 1, run.stderr
    assert "| " in run.stdout and "<- zero" in run.stdout


def test_form_feed_does_not_shift_fix_lines():
    # str.splitlines() breaks on \x0c; Python does not. Edits must land on Python's lines.
    text = "import torch\n\x0c\n" + (FIX / "zg001_missing_zero.py").read_text()
    result = fix_source(text, "t.py", Settings(), unsafe=True)
    assert result.refused == "" and result.fixed
    assert result.text == "import torch\n\x0c\n" + (FIX / "zg001_missing_zero.fixed.py").read_text()
