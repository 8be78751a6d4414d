"""``--statistics``: how many findings per rule, instead of the findings themselves."""
from __future__ import annotations

import json
from collections import Counter

from zgcheck.reporting import RunReport


def rows(report: RunReport) -> list[tuple[int, str, str, bool]]:
    """(count, code, rule name, fixable) by descending count, then code."""
    from zgcheck.rules import RULES_BY_CODE

    counts = Counter(d.code for d in report.diagnostics)
    fixable = {d.code for d in report.diagnostics if d.fix is not None}
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [(n, code, RULES_BY_CODE[code].name if code in RULES_BY_CODE else "", code in fixable) for code, n in ordered]


def write_statistics(report: RunReport, stream, as_json: bool = False) -> None:
    table = rows(report)
    if as_json:
        keys = ("count", "code", "name", "fixable")
        json.dump([dict(zip(keys, row)) for row in table], stream, indent=2)
        stream.write("\n")
        return
    width = max((len(str(n)) for n, *_ in table), default=1)
    for count, code, name, fixable in table:
        stream.write(f"{count:>{width}}\t{code}\t{'[*] ' if fixable else ''}{name}\n")
