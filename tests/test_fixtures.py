"""Every fixture file is checked and compared exactly with its inline `# expect:` markers."""
from __future__ import annotations

from collections import Counter

import pytest

from fixture_expectations import ROOT, expected, fixture_files, project_dirs
from zgcheck import check_source
from zgcheck.runner import check_file, check_paths
from zgcheck.settings import Settings
from zgcheck.rules import RULES

FILES = fixture_files()


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_fixture(path):
    text = path.read_text(encoding="utf-8")
    result = check_source(text, str(path))
    assert result.problems == ()
    got = sorted((d.location.row, d.code) for d in result.diagnostics)
    assert got == expected(text)


def test_fixture_suite_is_broad():
    assert len(FILES) >= 60
    codes = Counter(code for p in FILES for _, code in expected(p.read_text(encoding="utf-8")))
    for rule in RULES:
        assert codes[rule.code] >= 5, f"{rule.code} has only {codes[rule.code]} fixture findings"
    clean = [p for p in FILES if p.parent.name == "clean"]
    assert len(clean) >= 30


def test_clean_fixtures_have_no_markers():
    for path in FILES:
        if path.parent.name == "clean":
            assert expected(path.read_text(encoding="utf-8")) == [], path


PROJECTS = project_dirs()


@pytest.mark.parametrize("project", PROJECTS, ids=[p.name for p in PROJECTS])
def test_project_fixture_checked_as_a_tree(project):
    """Helpers in other modules are resolved: every file's findings match its markers."""
    results = check_paths([str(project)], jobs=1)
    assert all(not r.problems for r in results), [r.problems for r in results if r.problems]
    got = sorted((r.filename, d.location.row, d.code) for r in results for d in r.diagnostics)
    want = sorted(
        (str(path), row, code)
        for path in project.rglob("*.py")
        for row, code in expected(path.read_text(encoding="utf-8"))
    )
    assert got == want


@pytest.mark.parametrize("project", PROJECTS, ids=[p.name for p in PROJECTS])
def test_project_file_named_alone_still_resolves_its_helpers(project):
    """pre-commit names single files: their helpers are still found in the repository."""
    for path in project.rglob("*.py"):
        result = check_file(str(path), Settings())
        assert sorted((d.location.row, d.code) for d in result.diagnostics) == expected(path.read_text(encoding="utf-8"))


def test_project_fixtures_cover_both_verdicts():
    marked = [p for project in PROJECTS for p in project.rglob("*.py") if expected(p.read_text(encoding="utf-8"))]
    assert len(PROJECTS) >= 4 and len(marked) >= 2


@pytest.mark.parametrize("name", ["mode_switch_amp_branches_accum.py", "mode_switch_config_attribute_steps.py"])
def test_over_budget_fallback_keeps_mode_switches(name, monkeypatch):
    """A region over the work budget is analysed again; forgetting its mode switches then
    joined AMP and fp32 branches that never meet in one run and reported a false ZG001
    (sd-scripts' train_network.py). The first attempt is made to run over budget here."""
    from zgcheck import ordering

    real = ordering.Interpreter.run
    tried: set[int] = set()

    def run(self, node, tokens):
        if id(self) not in tried:
            tried.add(id(self))
            raise ordering.OverBudget
        return real(self, node, tokens)

    monkeypatch.setattr(ordering.Interpreter, "run", run)
    result = check_file(str(ROOT / "clean" / name), Settings())
    assert tried and result.diagnostics == ()
