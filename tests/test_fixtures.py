"""Every fixture file is checked and compared exactly with its inline `# expect:` markers."""
from __future__ import annotations

from collections import Counter

import pytest

from fixture_expectations import ROOT, expected, fixture_files
from zgcheck import check_source
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
