"""The command line as a user meets it: exit codes, formats, bad files, rule docs."""
from __future__ import annotations

import json
import re
import os
from pathlib import Path

from click.testing import CliRunner

from zgcheck.cli import main
from samples import BUG, CLEAN

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_tutorial_fixture_exit_1_with_one_zg002():
    result = invoke("check", "--no-color", str(FIXTURES / "zg002" / "tutorial_seed.py"))
    assert result.exit_code == 1
    assert len(re.findall(r"^\S+:\d+:\d+: ZG002 ", result.output, re.M)) == 1
    assert "Found 1 finding" in result.output


def test_clean_file_exits_0(tmp_path):
    (tmp_path / "train.py").write_text(CLEAN)
    result = invoke("check", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "All checks passed" in result.output


def test_code_frame_marks_the_events(tmp_path):
    (tmp_path / "train.py").write_text(BUG)
    result = invoke("check", "--no-color", str(tmp_path / "train.py"))
    assert "← backward" in result.output and "← zero" in result.output and "← step" in result.output
    assert "\x1b[" not in result.output


def test_json_output_uses_ruff_field_names(tmp_path):
    (tmp_path / "train.py").write_text(BUG)
    result = invoke("check", "--output-format", "json", str(tmp_path))
    assert result.exit_code == 1
    items = json.loads(result.output)
    assert len(items) == 1
    item = items[0]
    assert set(item) >= {"code", "message", "filename", "location", "end_location", "fix", "url"}
    assert item["code"] == "ZG002" and item["location"] == {"row": 7, "column": 5}
    assert item["url"].endswith("#zg002")
    assert item["fix"]["applicability"] == "safe" and item["fix"]["edits"]


def test_format_is_an_alias_of_output_format(tmp_path):
    """flake8's spelling (`--format json`) works too."""
    (tmp_path / "train.py").write_text(BUG)
    result = invoke("check", "--format", "json", str(tmp_path))
    assert result.exit_code == 1 and json.loads(result.output)[0]["code"] == "ZG002"


def test_select_and_ignore(tmp_path):
    (tmp_path / "train.py").write_text(BUG)
    assert invoke("check", "--ignore", "ZG002", str(tmp_path)).exit_code == 0
    assert invoke("check", "--select", "ZG001,ZG003", str(tmp_path)).exit_code == 0
    assert invoke("check", "--select", "ZG002", str(tmp_path)).exit_code == 1


def test_unknown_rule_code_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["check", "--select", "ZG999", str(tmp_path)])
    assert result.exit_code == 2
    assert "unknown rule code" in (result.stderr if hasattr(result, "stderr") else result.output)


def test_bad_files_are_reported_and_the_run_goes_on(tmp_path):
    (tmp_path / "a_syntax.py").write_text("def broken(:\n    loss.backward()\n    opt.step()\n")
    (tmp_path / "b_latin1.py").write_bytes(b"# caf\xe9\nx = 1  # backward step\n")
    (tmp_path / "c_train.py").write_text(BUG)
    os.symlink(tmp_path / "missing.py", tmp_path / "d_dangling.py")
    result = invoke("check", "--no-color", str(tmp_path))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert any("a_syntax.py:1:" in l and "syntax error" in l for l in lines)
    assert any("b_latin1.py:" in l and "cannot decode as utf-8" in l for l in lines)
    assert any("d_dangling.py:" in l and "not found" in l for l in lines)
    assert any("c_train.py:7:5: ZG002" in l for l in lines)


def test_unreadable_file(tmp_path, monkeypatch):
    target = tmp_path / "secret.py"
    target.write_text(BUG)
    real_open = open

    def deny(path, *args, **kwargs):
        if str(path) == str(target):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", deny)
    result = invoke("check", "--no-color", str(tmp_path))
    assert result.exit_code == 1
    assert "secret.py: error: cannot read file: permission denied" in result.output


def test_internal_crash_is_reported_for_that_file(tmp_path, monkeypatch):
    (tmp_path / "a.py").write_text(BUG)
    (tmp_path / "b.py").write_text(BUG)
    import zgcheck.loops as loops

    real = loops.extract_regions

    def crash(parsed, facts, resolver=None):
        if "a.py" in str(parsed.module.code) or crash.calls == 0:
            crash.calls += 1
            raise ValueError("boom")
        return real(parsed, facts, resolver)

    crash.calls = 0
    monkeypatch.setattr(loops, "extract_regions", crash)
    result = invoke("check", "--no-color", str(tmp_path))
    assert "internal error while analysing: ValueError: boom" in result.output
    assert "b.py:7:5: ZG002" in result.output


def test_missing_path(tmp_path):
    result = invoke("check", str(tmp_path / "nope"))
    assert result.exit_code == 1
    assert "no such file or directory" in result.output


def test_rule_command():
    result = invoke("rule", "ZG002")
    assert result.exit_code == 0
    for heading in ("What it does", "Why it hurts training", "Bad", "Good", "How the fix works"):
        assert heading in result.output
    listing = invoke("rule", "--all").output
    assert all(code in listing for code in ("ZG001", "ZG002", "ZG003", "ZG004", "ZG005", "ZG006", "ZG007"))
    assert invoke("rule", "ZG042").exit_code == 2


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and "zgcheck" in result.output
