"""Runtime truth: every fix pair runs under torch with the gradient oracle.

The buggy script must show the bug its header predicts (`# oracle: <kind>`), the fixed
script must show none and must learn (its loss goes down)."""
from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed: pip install torch==2.13.0")

from oracle import run_script  # noqa: E402

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "fix"
PAIRS = sorted(p for p in FIX.glob("*.py") if not p.name.endswith(".fixed.py"))


def predicted(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# oracle: "), f"{path.name} must start with '# oracle: <kind>'"
    return first.split(":", 1)[1].strip()


@pytest.mark.parametrize("path", PAIRS, ids=[p.name for p in PAIRS])
def test_buggy_shows_bug_and_fixed_is_clean(path):
    kind = predicted(path)
    buggy = run_script(str(path))
    assert buggy.events[kind] > 0, f"expected {kind}, oracle saw {dict(buggy.events)}"
    fixed = run_script(str(path.with_name(path.stem + ".fixed.py")))
    assert fixed.bugs == {}, f"fixed script still shows {fixed.bugs}"
    assert fixed.learned(), f"fixed script did not learn: {fixed.losses[:3]} ... {fixed.losses[-3:]}"


def test_oracle_accepts_correct_shapes(tmp_path):
    script = tmp_path / "accumulate.py"
    script.write_text(
        "import torch\n"
        "torch.manual_seed(0)\n"
        "m = torch.nn.Linear(2, 1)\n"
        "opt = torch.optim.SGD(m.parameters(), lr=0.1)\n"
        "for i in range(12):\n"
        "    (m(torch.randn(4, 2)).pow(2).mean() / 3).backward()\n"
        "    if (i + 1) % 3 == 0:\n"
        "        opt.step()\n"
        "        opt.zero_grad()\n"
    )
    assert run_script(str(script)).bugs == {}
