"""The run over many files: a process pool gives exactly the serial results, in order."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from zgcheck import runner
from zgcheck.cli import main
from zgcheck.parsing import precheck
from zgcheck.settings import Settings
from test_cli import BUG, CLEAN

LIBRARY = "def helper(x):\n    return [i * 2 for i in range(x)]\n"
MENTION = '"""Kept for backward compatibility."""\ndef advance(step=1):\n    return step\n'


def make_tree(root: Path, count: int = 40) -> list[str]:
    """Files of every kind, enough candidates for the pool to start."""
    kinds = [BUG, CLEAN, LIBRARY, MENTION, "def broken(:\n    loss.backward()\n    opt.step()\n"]
    paths = []
    for i in range(count):
        path = root / f"m{i:03d}.py"
        path.write_text(kinds[i % len(kinds)])
        paths.append(str(path))
    return paths


def test_enough_candidates_for_the_pool(tmp_path):
    paths = make_tree(tmp_path)
    candidates = [p for p in paths if runner.might_hold_training_code(Path(p).read_bytes())]
    assert len(candidates) >= runner.PARALLEL_MIN


@pytest.mark.parametrize("jobs", [2, 3])
def test_parallel_results_equal_serial_in_the_same_order(tmp_path, jobs):
    paths = make_tree(tmp_path)
    serial = list(runner.run(paths, Settings(), jobs=1))
    parallel = list(runner.run(paths, Settings(), jobs=jobs))
    assert [r.filename for r in parallel] == paths
    assert parallel == serial
    assert any(r.diagnostics for r in serial) and any(r.problems for r in serial)


def test_parallel_cli_output_is_byte_identical(tmp_path):
    make_tree(tmp_path)
    outputs = set()
    for jobs in ("1", "2", "4"):
        for fmt in ("full", "json"):
            result = CliRunner().invoke(main, ["check", "--no-cache", "-j", jobs, "-o", fmt, "--no-color", str(tmp_path)])
            assert result.exit_code == 1
            outputs.add((fmt, result.output))
    assert len(outputs) == 2  # one text and one JSON output, whatever the worker count


def test_jobs_must_be_positive(tmp_path):
    result = CliRunner().invoke(main, ["check", "-j", "0", str(tmp_path)])
    assert result.exit_code == 2


@pytest.mark.parametrize(
    "text, expected",
    [
        pytest.param("loss.backward()\noptimizer.step()\n", True, id="step-call"),
        pytest.param("loss.backward()\np.data -= 0.1 * p.grad\n", True, id="manual-update"),
        pytest.param("p.data -= p.grad\n", False, id="update-without-backward"),
        pytest.param("loss.backward()\nxm.optimizer_step(opt)\n", True, id="xla-step"),
        pytest.param(MENTION, False, id="words-only"),
        pytest.param("# backward step .grad\nx = 1\n", False, id="comment-only"),
        pytest.param("def broken(:\n    loss.backward()\n    opt.step()\n", True, id="syntax-error-goes-on"),
    ],
)
def test_ast_prefilter(text, expected):
    assert precheck("t.py", text).has_events is expected


def test_ordering_over_its_work_budget_forgets_conditions_then_goes_silent(monkeypatch):
    """A region whose fixpoint would take too long (dozens of correlated conditions) is
    analysed again remembering only its mode switches, and left silent if that is too long."""
    import zgcheck.ordering as ordering
    from zgcheck import check_source

    # Per-iteration tests (they read the loop's `x`), each made twice: remembered at first.
    tests = "".join(f"    if x[{i}][0] > 0:\n        model(x).sum().backward()\n" for i in range(4)) * 2
    text = (
        "import torch\n"
        "model = torch.nn.Linear(2, 1)\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for x in torch.randn(8, 4, 2):\n" + tests + "    if use_amp:\n        opt.step()\n"
    )
    work: dict[bool, int] = {}
    real = ordering.Interpreter.analyse

    def spy(self):
        result = real(self)
        work[len(self.correlated) > len(self.switches)] = self.work
        return result

    monkeypatch.setattr(ordering.Interpreter, "analyse", spy)
    assert [d.code for d in check_source(text, "t.py").diagnostics] == ["ZG001"]
    remembering = work[True]
    monkeypatch.setattr(ordering, "WORK_BUDGET", remembering - 1)
    assert [d.code for d in check_source(text, "t.py").diagnostics] == ["ZG001"]
    forgetting = work[False]
    assert forgetting < remembering  # the second pass ran, with the mode switch only
    monkeypatch.setattr(ordering, "WORK_BUDGET", forgetting - 1)
    assert check_source(text, "t.py").diagnostics == ()


def test_workers_are_never_forked_from_a_process_with_other_threads():
    """Forking a process whose other threads hold locks (torch's, gloo's) can hang the
    worker for ever; the CLI's process has one thread and forks."""
    import threading

    started, stop = threading.Event(), threading.Event()
    thread = threading.Thread(target=lambda: (started.set(), stop.wait()))
    thread.start()
    try:
        started.wait()
        assert runner._pool_context().get_start_method() != "fork"
    finally:
        stop.set()
        thread.join()
