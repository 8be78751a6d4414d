"""SARIF 2.1.0, the format GitHub code scanning and other CI dashboards read.

Rule metadata comes from the registry (one doc source: the rule's explanation is both
fullDescription and help). URIs are repo-relative against ``%SRCROOT%`` so results map
onto the repository whatever folder the run happened in.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from zgcheck import __version__
from zgcheck.diagnostics import Diagnostic, FileProblem
from zgcheck.fingerprint import fingerprint, repo_relative, repo_root
from zgcheck.reporting import RunReport

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
BASE = "%SRCROOT%"


def _rule(rule) -> dict:
    return {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": rule.explanation},
        "help": {"text": rule.explanation},
        "helpUri": rule.url,
        "defaultConfiguration": {"level": "error"},
    }


def _artifact(filename: str) -> dict:
    rel = repo_relative(filename)
    # A file outside the repository (or the current folder) gets an absolute file URI.
    return {"uri": Path(rel).as_uri()} if os.path.isabs(rel) else {"uri": rel, "uriBaseId": BASE}


def _physical(filename: str, region: dict) -> dict:
    return {"physicalLocation": {"artifactLocation": _artifact(filename), "region": region}}


def _result(diag: Diagnostic, index: int, lines: tuple[str, ...]) -> dict:
    region = {
        "startLine": diag.location.row, "startColumn": diag.location.column,
        "endLine": diag.end_location.row, "endColumn": diag.end_location.column,
    }
    related = [
        {"id": n, "message": {"text": event.label}, **_physical(diag.filename, {"startLine": event.line})}
        for n, event in enumerate(diag.related)
    ]
    result = {
        "ruleId": diag.code,
        "ruleIndex": index,
        "level": "error",
        "message": {"text": diag.message},
        "locations": [_physical(diag.filename, region)],
        "partialFingerprints": {"zgcheck/v1": fingerprint(diag, lines)},
    }
    if related:
        result["relatedLocations"] = related
    return result


def _notification(problem: FileProblem) -> dict:
    region = {"startLine": max(problem.row, 1), "startColumn": max(problem.column, 1)}
    return {"level": "error", "message": {"text": f"{problem.kind}: {problem.message}"},
            "locations": [_physical(problem.filename, region)]}


def write_sarif(report: RunReport, stream) -> None:
    from zgcheck.rules import RULES

    index = {rule.code: n for n, rule in enumerate(RULES)}
    run = {
        "tool": {"driver": {"name": "zgcheck", "version": __version__, "informationUri": "https://github.com/zgcheck/zgcheck",
                            "rules": [_rule(rule) for rule in RULES]}},
        "originalUriBaseIds": {BASE: {"uri": Path(repo_root(os.getcwd())).as_uri() + "/"}},
        "invocations": [{"executionSuccessful": True,
                         "toolExecutionNotifications": [_notification(p) for p in report.all_problems]}],
        "results": [
            _result(diag, index.get(diag.code, -1), result.source_lines)
            for result in report.results for diag in result.diagnostics
        ],
    }
    json.dump({"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}, stream, indent=2)
    stream.write("\n")
