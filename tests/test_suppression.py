"""# noqa directives, the file-level exemption and ZG100 with its removal fix."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from zgcheck import check_source
from zgcheck.cli import main
from zgcheck.diagnostics import Edit
from zgcheck.settings import Settings

LOOP = """import torch
model = torch.nn.Linear(1, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for i in range(3):
    loss = model(torch.ones(1)).sum()
    loss.backward()
    optimizer.zero_grad(){zero}
    optimizer.step(){step}
"""


def found(zero: str = "", step: str = "", settings: Settings | None = None) -> list[tuple[int, str]]:
    result = check_source(LOOP.format(zero=zero, step=step), "train.py", settings)
    return [(d.location.row, d.code) for d in result.diagnostics]


def apply(text: str, edit: Edit) -> str:
    """Apply one edit (1-based rows and columns) to ``text``."""
    lines = text.splitlines(keepends=True)
    offset = lambda loc: sum(len(l) for l in lines[: loc.row - 1]) + loc.column - 1
    return text[: offset(edit.location)] + edit.content + text[offset(edit.end_location):]


@pytest.mark.parametrize("zero, step, expected", [
    ("", "", [(7, "ZG002")]),
    ("  # noqa: ZG002", "", []),
    ("  # noqa", "", []),
    ("  # NOQA:ZG002,ZG001", "", [(7, "ZG100")]),
    ("  # noqa: E501", "", [(7, "ZG002")]),
    ("  # noqa: ZG001", "", [(7, "ZG002"), (7, "ZG100")]),
    ("", "  # noqa: ZG002", [(7, "ZG002"), (8, "ZG100")]),
    ("  # noqa: ZG002, ZG100, ZG004", "", []),
    ("  # noqa: ZG999", "", [(7, "ZG002"), (7, "ZG100")]),
], ids=["none", "code", "bare", "case-and-unused", "other-linter", "wrong-code", "wrong-line", "keep-zg100", "unknown"])
def test_line_directives(zero, step, expected):
    assert found(zero, step) == expected


def test_file_level_exemption():
    text = "# zgcheck: noqa\n" + LOOP.format(zero="", step="  # noqa: ZG004")
    assert check_source(text, "train.py").diagnostics == ()
    text = "# zgcheck: noqa: ZG100\n" + LOOP.format(zero="", step="  # noqa: ZG004")
    assert [d.code for d in check_source(text, "train.py").diagnostics] == ["ZG002"]


def test_directive_in_a_string_is_not_a_directive():
    assert found(zero='; x = "# noqa: ZG002"') == [(7, "ZG002")]


def test_unused_code_of_an_unselected_rule_is_not_reported():
    assert found(zero="  # noqa: ZG002, ZG004", settings=Settings.from_options(("ZG002", "ZG100"))) == []
    assert found(zero="  # noqa: ZG001", settings=Settings.from_options(ignore=("ZG100",))) == [(7, "ZG002")]


@pytest.mark.parametrize("line, fixed", [
    ("    optimizer.step()  # noqa: ZG002\n", "    optimizer.step()\n"),
    ("    optimizer.step()  # noqa: ZG002 -- old bug\n", "    optimizer.step()  # -- old bug\n"),
    ("    optimizer.step()  # note # noqa: ZG002\n", "    optimizer.step()  # note\n"),
    ("    optimizer.step()  # note # noqa: ZG002 tail\n", "    optimizer.step()  # note tail\n"),
    ("    optimizer.step()  # noqa: E501, ZG002\n", "    optimizer.step()  # noqa: E501\n"),
], ids=["alone", "reason-kept", "after-comment", "middle", "keep-other-codes"])
def test_zg100_fix_removes_the_directive(line, fixed):
    text = LOOP.format(zero="  # noqa: ZG002", step="")
    text = text.replace("    optimizer.step()\n", line)
    diag = next(d for d in check_source(text, "train.py").diagnostics if d.code == "ZG100")
    assert diag.fix.applicability == "safe" and len(diag.fix.edits) == 1
    assert apply(text, diag.fix.edits[0]) == text.replace(line, fixed)


def test_own_line_directive_is_removed_with_its_line():
    text = LOOP.format(zero="", step="") + "# noqa: ZG002\n"
    text = text.replace("    optimizer.zero_grad()\n", "    optimizer.zero_grad()  # noqa: ZG002\n")
    diag = next(d for d in check_source(text, "train.py").diagnostics if d.code == "ZG100")
    assert diag.location.row == 9
    assert apply(text, diag.fix.edits[0]) == text.replace("\n# noqa: ZG002\n", "\n")


def test_json_serialises_the_fix_as_ruff_does(tmp_path):
    (tmp_path / "train.py").write_text(LOOP.format(zero="  # noqa: ZG002", step="  # noqa: ZG002"))
    result = CliRunner().invoke(main, ["check", "-o", "json", str(tmp_path)])
    item = json.loads(result.output)[0]
    assert item["code"] == "ZG100" and item["location"] == {"column": 23, "row": 8}
    assert item["fix"] == {
        "applicability": "safe",
        "edits": [{"content": "", "end_location": {"column": 36, "row": 8}, "location": {"column": 21, "row": 8}}],
        "message": "Remove unused `noqa` directive",
    }


def test_fix_removes_an_unused_directive(tmp_path):
    target = tmp_path / "train.py"
    target.write_text(LOOP.format(zero="  # noqa: ZG002", step="  # noqa: ZG002"))
    result = CliRunner().invoke(main, ["check", "--fix", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text() == LOOP.format(zero="  # noqa: ZG002", step="")


def test_directives_of_other_linters_never_cost_a_tokenize(monkeypatch):
    """Library files full of `# noqa: E501` (and no finding) are not tokenized: nothing
    there can be reported, so reading their comments would only cost time."""
    import zgcheck.suppression as suppression

    def refuse(*_args, **_kwargs):
        raise AssertionError("tokenized although no directive can matter")

    monkeypatch.setattr(suppression.tokenize, "generate_tokens", refuse)
    text = "x = 1  # noqa: E501\ny = 2  # noqa\n" + LOOP.format(zero="", step="  # noqa: BLE001")
    assert suppression.suppress([], text, "t.py", frozenset({"ZG002", "ZG100"}), frozenset({"ZG002", "ZG100"})) == []


def test_only_directives_that_can_matter_are_read():
    from zgcheck.suppression import directives

    text = 's = """\n# noqa: ZG002\n"""\nx = 1  # noqa: ZG004\ny = 2  # noqa: E501\nz = 3  # noqa\n'
    assert sorted(directives(text)) == [4, 5, 6]
    assert sorted(directives(text, rows={2, 4})) == [4]  # row 2 is inside a string
    assert directives(text, rows=set()) == {}


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_directive_rows_count_every_line_ending(newline):
    from zgcheck.suppression import candidate_rows, directives

    text = newline.join(["a = 1", "b = 2  # noqa: ZG002", "c = 3", "d = 4  # noqa: E501, ZG004", ""])
    assert candidate_rows(text) == {2: ("ZG002",), 4: ("E501", "ZG004")}
    assert sorted(directives(text, rows={2, 4})) == [2, 4]
