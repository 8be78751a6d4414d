"""Notebooks: cells checked in order as one module, magics masked, locations per cell,
fixes that change only the fixed cells' sources."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from zgcheck.cli import main
from zgcheck.runner import check_file
from zgcheck.settings import Settings

NB = Path(__file__).resolve().parent.parent / "fixtures" / "notebooks"
CHECKED = sorted(p for p in NB.glob("*.ipynb") if not p.name.endswith(".fixed.ipynb"))
PAIRS = sorted(NB.glob("*.fixed.ipynb"))


def expected(path: Path) -> list[tuple[int, int, str]]:
    found = []
    for number, cell in enumerate(json.loads(path.read_text())["cells"], start=1):
        for row, line in enumerate("".join(cell["source"]).splitlines(), start=1):
            match = re.search(r"#\s*expect:\s*(ZG\d+)", line)
            if match and cell["cell_type"] == "code":
                found.append((number, row, match.group(1)))
    return found


def test_at_least_six_notebooks_and_two_pairs():
    assert len(CHECKED) >= 6 and len(PAIRS) >= 2


@pytest.mark.parametrize("path", CHECKED, ids=[p.name for p in CHECKED])
def test_notebook_expectations(path):
    result = check_file(str(path), Settings())
    got = sorted((d.cell, d.location.row, d.code) for d in result.diagnostics)
    assert got == expected(path)
    if path.name != "broken_cell.ipynb":
        assert result.problems == ()


def test_broken_cell_is_reported_alone():
    result = check_file(str(NB / "broken_cell.ipynb"), Settings())
    assert len(result.problems) == 1 and "cell 2: syntax error" in result.problems[0].message
    assert result.problems[0].cell == 2  # JSON carries it like a finding's cell
    assert [d.code for d in result.diagnostics] == ["ZG001"]


def test_ipython_only_lines_are_no_syntax_errors_and_an_indented_cell_keeps_its_columns(tmp_path):
    """`pip install x`, `ls dir`, `f(a,  # why?` and a cell indented as a whole run in
    IPython; the indented cell's finding is placed at its own column and gets no fix (its
    indentation is not zgcheck's to rewrite), so --fix leaves the notebook as it is."""
    path = NB / "ipython_only_lines_zg001.ipynb"
    result = check_file(str(path), Settings())
    assert result.problems == ()
    (diag,) = result.diagnostics
    assert (diag.cell, diag.location.row, diag.location.column) == (5, 4, 7)
    assert diag.fix is None
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    CliRunner().invoke(main, ["check", "--fix", "--unsafe-fixes", str(copy)])
    assert copy.read_bytes() == path.read_bytes()


def test_a_line_starting_with_a_shell_word_that_is_python_stays_code(tmp_path):
    """`env = dict(` goes on below; `time = 3` and `ls = [...]` are assignments: only a line
    that is not Python as written (`ls /content/`) is taken for a shell command."""
    source = "env = dict(\n    lr=0.1)\nls = [\n    1]\ntime = 3\nloss.backward()\nopt.step()  # expect: ZG001\n"
    cells = [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": [source]}]
    path = tmp_path / "names.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    result = check_file(str(path), Settings())
    assert result.problems == ()


def test_summary_counts_a_notebook_with_broken_cells_once(tmp_path):
    cells = [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": [src]}
             for src in ("x = (\n", "y = ]\n", "loss.backward()\nopt.step()\n")]
    path = tmp_path / "two_broken.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    output = CliRunner().invoke(main, ["check", "--no-color", "--no-cache", str(path)]).output
    assert output.count("syntax error") == 2 and "1 file could not be analysed (in full)" in output


def test_cell_aware_text_and_json(tmp_path):
    path = str(NB / "tutorial_zg002.ipynb")
    text = CliRunner().invoke(main, ["check", "--no-color", path]).output
    assert "tutorial_zg002.ipynb:cell 3:8:9: ZG002" in text
    items = json.loads(CliRunner().invoke(main, ["check", "-o", "json", path]).output)
    assert items[0]["cell"] == 3 and items[0]["location"] == {"row": 8, "column": 9}


@pytest.mark.parametrize("fixed", PAIRS, ids=[p.name for p in PAIRS])
def test_notebook_fix_changes_only_that_cell(tmp_path, fixed):
    original = fixed.with_name(fixed.name.replace(".fixed.ipynb", ".ipynb"))
    work = tmp_path / original.name
    shutil.copy(original, work)
    result = CliRunner().invoke(main, ["check", "--fix", str(work)])
    assert result.exit_code == 0, result.output
    assert work.read_bytes() == fixed.read_bytes()
    before, after = json.loads(original.read_text()), json.loads(work.read_text())
    changed = [i for i, (a, b) in enumerate(zip(before["cells"], after["cells"])) if a != b]
    assert len(changed) == 1
    for i, (a, b) in enumerate(zip(before["cells"], after["cells"])):
        assert {k: v for k, v in a.items() if k != "source"} == {k: v for k, v in b.items() if k != "source"}
    assert before["metadata"] == after["metadata"]
    assert "ünïcode" in work.read_text(encoding="utf-8") or "ünïcode" not in original.read_text(encoding="utf-8")
    again = CliRunner().invoke(main, ["check", str(work)])
    assert again.exit_code == 0


def test_magics_restored_exactly(tmp_path):
    work = tmp_path / "nb.ipynb"
    shutil.copy(NB / "tutorial_zg002.ipynb", work)
    CliRunner().invoke(main, ["check", "--fix", str(work)])
    sources = ["".join(c["source"]) for c in json.loads(work.read_text())["cells"]]
    assert sources[1].startswith("%matplotlib inline\n!pip install -q torch\n")
    assert sources[2].startswith("%%time\n")


def test_broken_notebook_json_is_one_line_and_never_written(tmp_path):
    bad = tmp_path / "bad.ipynb"
    bad.write_text('{"cells": [ backward step')
    old = tmp_path / "old.ipynb"
    old.write_text(json.dumps({"nbformat": 3, "worksheets": [], "x": "backward step"}))
    result = CliRunner().invoke(main, ["check", "--fix", "--no-color", str(tmp_path)])
    assert result.exit_code == 1
    assert "bad.ipynb: error: not a valid notebook" in result.output
    assert "old.ipynb: error: not a valid notebook: only nbformat 4" in result.output
    assert bad.read_text() == '{"cells": [ backward step'


def test_diff_on_notebook_writes_nothing(tmp_path):
    work = tmp_path / "nb.ipynb"
    shutil.copy(NB / "tutorial_zg002.ipynb", work)
    before = work.read_bytes()
    result = CliRunner().invoke(main, ["check", "--diff", str(work)])
    assert result.exit_code == 1 and "optimizer.step()" in result.output
    assert work.read_bytes() == before


def test_json_fix_edits_use_cell_rows_like_the_location():
    import json

    from click.testing import CliRunner

    from zgcheck.cli import main

    path = NB / "tutorial_zg002.ipynb"
    result = CliRunner().invoke(main, ["check", "--no-cache", "-o", "json", str(path)])
    (diag,) = json.loads(result.output)
    cell_lines = "".join(json.loads(path.read_text())["cells"][diag["cell"] - 1]["source"]).count("\n") + 1
    rows = [e["location"]["row"] for e in diag["fix"]["edits"]] + [e["end_location"]["row"] for e in diag["fix"]["edits"]]
    deleted = [e for e in diag["fix"]["edits"] if e["content"] == ""]
    # the moved zero (with its comment) is deleted where it is reported, in cell rows
    assert any(e["location"]["row"] <= diag["location"]["row"] < e["end_location"]["row"] for e in deleted)
    assert all(1 <= row <= cell_lines + 1 for row in rows)
