"""Every output format against a golden file, SARIF against the official schema.

Regenerate the golden files after an intended change with
``ZGCHECK_UPDATE_GOLDEN=1 python -m pytest tests/test_formats.py``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from zgcheck import __version__
from zgcheck.cli import main
from zgcheck.reporting import FORMATS
from zgcheck.reporting.github import escape_data, escape_property

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden"
SCHEMA = HERE.parent.parent / "shared" / "schemas" / "sarif-schema-2.1.0.json"
SUFFIX = {"full": "txt", "concise": "txt", "json": "json", "json-lines": "jsonl", "github": "txt",
          "sarif": "sarif.json", "junit": "xml", "gitlab": "json"}

ZG002 = """import torch
model = torch.nn.Linear(1, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for i in range(3):
    loss = model(torch.ones(1)).sum()
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()  # noqa: ZG002
"""
ZG001 = """import torch
model = torch.nn.Linear(1, 1)
opt = torch.optim.Adam(model.parameters())
for x in range(3):
    model(torch.ones(1)).sum().backward()
    opt.step()
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """Two buggy files in a folder that is the current directory (paths stay relative)."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "train.py").write_text(ZG002)
    (tmp_path / "pkg" / "loop.py").write_text(ZG001)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def normalise(text: str, root: Path) -> str:
    for variant in {str(root), os.path.realpath(root)}:
        text = text.replace(variant, "<ROOT>")
    return text.replace(f'"{__version__}"', '"<VERSION>"')


def compare(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("ZGCHECK_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing golden file {name}; run with ZGCHECK_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


@pytest.mark.parametrize("fmt", FORMATS)
def test_golden(project, fmt):
    result = CliRunner().invoke(main, ["check", "--no-color", "-o", fmt, "."])
    assert result.exit_code == 1, result.output
    compare(f"report.{fmt}.{SUFFIX[fmt]}", normalise(result.output, project))


def test_statistics_golden(project):
    result = CliRunner().invoke(main, ["check", "--statistics", "."])
    compare("statistics.txt", result.output)


def test_machine_formats_parse(project):
    for fmt in ("json", "sarif", "gitlab"):
        json.loads(CliRunner().invoke(main, ["check", "-o", fmt, "."]).output)
    lines = CliRunner().invoke(main, ["check", "-o", "json-lines", "."]).output.splitlines()
    assert [json.loads(line)["code"] for line in lines] == ["ZG001", "ZG002", "ZG100"]
    import xml.etree.ElementTree as ET

    root = ET.fromstring(CliRunner().invoke(main, ["check", "-o", "junit", "."]).output)
    assert root.get("failures") == "3"


def test_gitlab_fingerprints_are_unique_and_stable(project):
    first = json.loads(CliRunner().invoke(main, ["check", "-o", "gitlab", "."]).output)
    (project / "train.py").write_text("# a new first line\n\n" + ZG002)
    second = json.loads(CliRunner().invoke(main, ["check", "-o", "gitlab", "."]).output)
    assert len({i["fingerprint"] for i in first}) == len(first)
    assert [i["fingerprint"] for i in first] == [i["fingerprint"] for i in second]
    assert [i["location"]["lines"]["begin"] for i in second] == [6, 9, 10]


def test_github_escaping():
    assert escape_data("100% done\r\nnext") == "100%25 done%0D%0Anext"
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"


def test_github_output_escapes_messages_and_properties(project):
    output = CliRunner().invoke(main, ["check", "-o", "github", "."]).output
    line = next(l for l in output.splitlines() if "ZG001" in l)
    props, message = line[len("::error "):].split("::", 1)
    assert props.startswith("file=pkg/loop.py,line=6,col=5,endLine=6,endColumn=15,title=ZG001 (missing-zero-grad)")
    assert "consumed: nothing" in message  # a colon in the message needs no escaping


def test_problems_appear_in_every_format(project):
    (project / "broken.py").write_text("def f(:\n    loss.backward()\n    opt.step()\n")
    for fmt in FORMATS:
        output = CliRunner().invoke(main, ["check", "--no-color", "-o", fmt, "broken.py"]).output
        assert "broken.py" in output, fmt


def test_sarif_validates_against_the_schema(project):
    if not SCHEMA.exists():
        pytest.skip(f"SARIF schema not found at {SCHEMA} (it lives in the shared folder next to the repo)")
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the test extra")
    (project / "broken.py").write_text("def f(:\n    loss.backward()\n    opt.step()\n")
    data = json.loads(CliRunner().invoke(main, ["check", "-o", "sarif", "."]).output)
    jsonschema.validate(data, json.loads(SCHEMA.read_text(encoding="utf-8")))
    run = data["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]][:2] == ["ZG001", "ZG002"]
    assert "Why it hurts training" in run["tool"]["driver"]["rules"][1]["help"]["text"]
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run["results"]}
    assert uris == {"train.py", "pkg/loop.py"}
    assert all(r["partialFingerprints"]["zgcheck/v1"] for r in run["results"])


def test_sarif_uris_are_relative_to_the_git_repository(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / ".git").mkdir()
    (repo / "src" / "train.py").write_text(ZG001)
    monkeypatch.chdir(repo / "src")
    data = json.loads(CliRunner().invoke(main, ["check", "-o", "sarif", "train.py"]).output)
    location = data["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert location == {"uri": "src/train.py", "uriBaseId": "%SRCROOT%"}
