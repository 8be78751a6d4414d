"""JUnit XML, as ruff writes it: one test suite per file, one failing case per finding.

CI systems without SARIF support (Jenkins, Azure, GitLab's test report) show these.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from itertools import groupby

from zgcheck.reporting import RunReport
from zgcheck.reporting.text import _relative


def _suite(parent: ET.Element, name: str, cases: int, failures: int, errors: int) -> ET.Element:
    return ET.SubElement(parent, "testsuite", name=name, tests=str(cases), failures=str(failures), errors=str(errors))


def write_junit(report: RunReport, stream) -> None:
    diagnostics, problems = report.diagnostics, report.all_problems
    root = ET.Element("testsuites", name="zgcheck", tests=str(len(diagnostics) + len(problems) or 1),
                      failures=str(len(diagnostics)), errors=str(len(problems)))
    for filename, group in groupby(diagnostics, key=lambda d: d.filename):
        found = list(group)
        suite = _suite(root, _relative(filename), len(found), len(found), 0)
        for diag in found:
            case = ET.SubElement(suite, "testcase", name=f"org.zgcheck.{diag.code}", classname=_relative(filename),
                                 line=str(diag.location.row), column=str(diag.location.column))
            failure = ET.SubElement(case, "failure", message=diag.message)
            failure.text = f"line {diag.location.row}, col {diag.location.column}, {diag.code} {diag.message}"
    for problem in problems:
        suite = _suite(root, _relative(problem.filename), 1, 0, 1)
        case = ET.SubElement(suite, "testcase", name=f"org.zgcheck.{problem.kind}", classname=_relative(problem.filename))
        ET.SubElement(case, "error", message=problem.message).text = problem.message
    if not diagnostics and not problems:
        suite = _suite(root, "zgcheck", 1, 0, 0)
        ET.SubElement(suite, "testcase", name="No errors found", classname="zgcheck")
    ET.indent(root)
    stream.write('<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n")
