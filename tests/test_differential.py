"""Differential testing: zgcheck's verdict against runtime truth on generated programs.

Every generated program is checked by zgcheck and executed under torch with the gradient
oracle; when its control flow is decidable (see Program.decidable) the two must agree on
"has a zeroing bug". Then `--fix --unsafe-fixes` is applied and the oracle must find the
fixed program clean. Profile: ZGCHECK_DIFF_EXAMPLES (default 150, derandomized)."""
from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed: pip install torch==2.13.0")
from hypothesis import HealthCheck, given, settings  # noqa: E402

from oracle import run_script  # noqa: E402
from program_generator import programs  # noqa: E402
from zgcheck import check_source  # noqa: E402
from zgcheck.runner import fix_source  # noqa: E402
from zgcheck.settings import Settings  # noqa: E402

EXAMPLES = int(os.environ.get("ZGCHECK_DIFF_EXAMPLES", "150"))
ORDERING = {"ZG001", "ZG002", "ZG003", "ZG004"}


def run(tmp_path, text: str, name: str):
    path = tmp_path / name
    path.write_text(text)
    return run_script(str(path))


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(program=programs())
def test_verdict_agrees_with_runtime(tmp_path, program):
    from hypothesis import assume

    assume(program.decidable())
    text = program.source()
    findings = [d for d in check_source(text, "gen.py").diagnostics if d.code in ORDERING]
    truth = run(tmp_path, text, "gen.py")
    assert bool(findings) == bool(truth.events["stale"] + truth.events["wiped"]), (
        f"zgcheck {[(d.code, d.location.row) for d in findings]} vs oracle {dict(truth.events)}\n{text}"
    )
    if findings:
        fixed = fix_source(text, "gen.py", Settings(), unsafe=True)
        left = [d for d in check_source(fixed.text, "gen.py").diagnostics if d.code in ORDERING]
        if fixed.fixed and not fixed.refused and not left:
            after = run(tmp_path, fixed.text, "gen_fixed.py")
            assert after.bugs == {}, f"fixed program still shows {after.bugs}\n{fixed.text}"
