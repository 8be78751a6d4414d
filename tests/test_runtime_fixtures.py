"""zgcheck.runtime against the static check, on runnable fixtures.

- Every runtime-truth script (the fix pairs, and any fixture that starts with `# oracle:`)
  gets the same verdict at run time as from `zgcheck check`: the same kinds of problem
  (stale / wiped / leak), codes among the static ones, none for the fixed scripts.
- `fixtures/runtime/` holds shapes static analysis cannot see (aliasing, a step or zero
  behind dynamic dispatch): the static check is silent, the runtime finds the code in the
  script's first line (`# runtime: ZG00N`, or `# runtime: clean` for the fixed versions).
"""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="zgcheck.runtime needs torch: pip install torch==2.13.0")

from runtime_helpers import KINDS, ROOT, codes, run_file  # noqa: E402
from zgcheck import check_source  # noqa: E402

FIXTURES = ROOT / "fixtures"
TRUTH = sorted(
    {p for p in (FIXTURES / "fix").glob("*.py")}
    | {p for p in FIXTURES.rglob("*.py") if "runtime" not in p.parts and p.read_text().startswith("# oracle:")}
)
RUNTIME = sorted((FIXTURES / "runtime").glob("*.py"))


def static_codes(path) -> set[str]:
    return {d.code for d in check_source(path.read_text(), str(path)).diagnostics if d.code in KINDS}


@pytest.mark.parametrize("path", TRUTH, ids=[p.name for p in TRUTH])
def test_runtime_verdict_matches_static(path):
    static = static_codes(path)
    found = codes(run_file(path))
    assert {KINDS[c] for c in found} == {KINDS[c] for c in static}, f"runtime {found} vs static {static}"
    assert found <= static, f"runtime {found} vs static {static}"


@pytest.mark.parametrize("path", RUNTIME, ids=[p.name for p in RUNTIME])
def test_runtime_sees_what_static_cannot(path):
    header = path.read_text().splitlines()[0]
    assert header.startswith("# runtime: "), f"{path.name} must start with '# runtime: ZG00N' or '# runtime: clean'"
    expected = header.split(":", 1)[1].strip()
    assert static_codes(path) == set(), "the static check sees this one: it belongs in fixtures/zg00N/"
    found = codes(run_file(path))
    assert found == (set() if expected == "clean" else {expected})
