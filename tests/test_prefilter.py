"""The CPython prefilter: which files and functions can hold a finding, and slicing away
the functions no analysis needs without changing any result."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
from fixture_expectations import fixture_files

from zgcheck import check_source, runner
from zgcheck.parsing import precheck
from zgcheck.prefilter import EventScan
from zgcheck.settings import Settings

HELPER_SPLIT = """\
def backward_pass(model, batch):
    loss = model(batch).sum()
    loss.backward()

for batch in data:
    optimizer.zero_grad()
    backward_pass(model, batch)
    optimizer.step()
"""

METHODS_SPLIT = """\
class Trainer:
    def compute(self, batch):
        self.model(batch).sum().backward()

    def update(self):
        self.optimizer.step()

    def fit(self, data):
        for batch in data:
            self.compute(batch)
            self.update()
"""

CLOSURE = """\
def closure():
    loss = model(x).sum()
    loss.backward()
    return loss

optimizer.step(closure)
"""

UNRELATED = """\
def check_gradients(x):
    x.sum().backward()
    return x.grad

def advance(scheduler):
    scheduler.step()
"""


@pytest.mark.parametrize(
    "text, expected",
    [
        pytest.param(HELPER_SPLIT, True, id="backward-in-a-helper"),
        pytest.param(METHODS_SPLIT, True, id="methods-joined-by-a-third"),
        pytest.param(CLOSURE, True, id="closure-handed-to-step"),
        pytest.param(UNRELATED, False, id="backward-and-step-never-meet"),
        pytest.param("x = 'loss.backward(); optimizer.step()'\n", False, id="words-in-a-string"),
        pytest.param("loss.backward()\nwith torch.no_grad():\n    w -= lr * w.grad\n", True, id="manual-update"),
        pytest.param("loss.backward()\nprint(w.grad)\n", False, id="grad-read-only"),
        pytest.param("loss.backward()\noptimizer.zero_grad()\n", False, id="no-step"),
    ],
)
def test_rules_need_backward_and_step_in_one_reach(text, expected):
    assert precheck("t.py", text).has_events is expected


def test_helpers_from_elsewhere_count_as_their_events():
    text = "for batch in data:\n    engine.run_backward(batch)\n    optimizer.step()\n"
    assert precheck("t.py", text).has_events is False
    assert precheck("t.py", text, helpers={"run_backward": frozenset({"backward"})}).has_events is True


SLICEABLE = """\
import torch


class Data:
    def __len__(self):
        return 3

    def describe(self):
        return "a data set"


def unrelated(x):
    return [i * 2 for i in range(x)]


def build(model):
    return torch.optim.SGD(model.parameters(), lr=0.1)


def train(model, data):
    opt = build(model)
    for x, y in data:
        loss = (model(x) - y).pow(2).mean()
        loss.backward()
        opt.step()
"""


def test_slicing_blanks_only_what_no_analysis_needs():
    scan = EventScan(SLICEABLE, ast.parse(SLICEABLE))
    sliced, removed = scan.sliced()
    assert sliced is not None and len(removed) == 3
    assert sliced.count("\n") == SLICEABLE.count("\n")
    kept = [line for line in sliced.splitlines() if line.strip()]
    assert "def build(model):" in kept and "def train(model, data):" in kept
    assert not any("unrelated" in line or "describe" in line for line in kept)
    ast.parse(sliced)  # still valid Python


def test_a_function_writing_a_name_the_loop_reads_stays():
    text = SLICEABLE.replace("    opt = build(model)\n", "") + "\n\ndef setup(model):\n    global opt\n    opt = make(model)\n"
    scan = EventScan(text, ast.parse(text))
    sliced, _ = scan.sliced()
    assert "def setup(model):" in sliced


def _without_slicing(monkeypatch):
    monkeypatch.setattr(EventScan, "sliced", lambda self: (None, set()))


@pytest.mark.parametrize("path", fixture_files(), ids=lambda p: p.name)
def test_slicing_changes_no_result(path, monkeypatch):
    text = path.read_text(encoding="utf-8")
    sliced = check_source(text, str(path))
    _without_slicing(monkeypatch)
    whole = check_source(text, str(path))
    assert sliced == whole


NATIVE = Path(__file__).resolve().parent.parent / "fixtures" / "projects" / "native_scaler"


def test_a_helper_that_gains_events_rechecks_its_cached_caller(tmp_path):
    """The prefilter's answer for a caller read another module: the cache must know."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    caller = tmp_path / "engine.py"
    caller.write_text((NATIVE / "engine_accum_zero_every_batch.py").read_text())
    helper = tmp_path / "utils.py"
    helper.write_text("class NativeScaler:\n    def __call__(self, loss, optimizer, parameters=None, update_grad=True):\n        pass\n")
    cache = tmp_path / "cache"
    first = list(runner.run([str(caller)], Settings(), cache_dir=str(cache)))
    assert first[0].diagnostics == ()
    assert str(helper) in dict(first[0].dependencies)
    helper.write_text((NATIVE / "utils.py").read_text())
    second = list(runner.run([str(caller)], Settings(), cache_dir=str(cache)))
    assert [d.code for d in second[0].diagnostics] == ["ZG004"]


# ----- the lexical scan before CPython's parser -------------------------------------
@pytest.mark.parametrize("text, expected", [
    pytest.param("loss.backward()\noptimizer.step()\n", True, id="calls"),
    pytest.param("p.grad = None\n", True, id="grad"),
    pytest.param("model.zero_grad()\n", True, id="zero-grad"),
    pytest.param("loss_scaler(loss, optimizer, update_grad=True)\n", True, id="loss-scaler-call"),
    pytest.param("state = loss_scaler.state_dict()\n", False, id="loss-scaler-not-called"),
    pytest.param('x = "backward"\ny = "step"\n', False, id="strings"),
    pytest.param("# loss.backward()\nopt.step()\n", False, id="comment"),
    pytest.param("s = '''\nloss.backward()\n'''\nopt.step()\n", False, id="triple-quoted"),
    pytest.param('s = """a \\""" b"""\nloss.backward()\nopt.step()\n', True, id="escaped-quote-in-triple"),
    pytest.param("x = 'it\\'s'; loss.backward(); opt.step()\n", True, id="escaped-quote"),
    pytest.param("x = f'{a!r}' rb'#' # backward\nloss.backward()\nopt.step()\n", True, id="prefixes-and-hash-in-string"),
    pytest.param("a = 'unterminated\nloss.backward()\nopt.step()\n", True, id="unterminated-stays-code"),
    pytest.param("x = '#'; loss.backward()  # 'step'\nopt.step()\n", True, id="hash-in-string"),
    # One of the two must be shaped as an event: called, or `.backward` / `.step` read.
    pytest.param("for step, batch in enumerate(data):\n    loss.backward()\n", True, id="step-variable-and-backward-call"),
    pytest.param("def train_step(self):\n    optimizer.backward(loss)\n", True, id="step-def-and-backward-call"),
    pytest.param("run_backward(loss)\nstep = 0\n", True, id="helper-call-named-backward"),
    pytest.param("closure = opt.step\nbackward_hooks = []\n", True, id="step-attribute-read"),
    pytest.param("ops(step=3)\nfn = sample_inputs_softmax_backward_data\n", False, id="keyword-and-name"),
    pytest.param("def softmax_backward(x, step):\n    return x\n", False, id="def-names"),
    pytest.param("out = aten.max_pool_backward.default(x)\nglobal_step += 1\n", False, id="attribute-not-called"),
    pytest.param("g = torch.autograd.grad(y, x)\nh = torch.nn.grad.conv2d_input\n", False, id="grad-modules"),
    pytest.param("g = autograd.grad(y, x)\nw.grad = None\n", True, id="grad-module-and-a-gradient"),
])
def test_lexical_scan_sees_only_code(text, expected):
    from zgcheck.sources import code_might_hold_training_code

    assert code_might_hold_training_code(text) is expected


def _tokenizer_truth(text: str) -> bool:
    """code_might_hold_training_code's rule, decided on Python's own tokens."""
    import io
    import tokenize

    tokens = [t for t in tokenize.generate_tokens(io.StringIO(text).readline)
              if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)]
    seen, shaped = set(), set()
    for index, token in enumerate(tokens):
        if token.type != tokenize.NAME:
            continue
        before = tokens[index - 1].string if index else ""
        after = tokens[index + 1].string if index + 1 < len(tokens) else ""
        name = token.string
        if "zero_grad" in name:
            return True
        if name.endswith("loss_scaler") and after == "(":
            return True  # a timm-style loss scaler object runs backward and step
        if before == "." and name.startswith("grad") and (index < 2 or tokens[index - 2].string not in ("autograd", "nn")):
            return True
        for word in ("backward", "step"):
            if word in name:
                seen.add(word)
                called = after == "(" and tokens[index - 1].string not in ("def", "class")
                if called or (before == "." and name in ("backward", "manual_backward", "step", "optimizer_step")):
                    shaped.add(word)
    return bool(shaped) and len(seen) == 2


def test_lexical_scan_agrees_with_the_tokenizer_on_every_fixture():
    """Where Python's tokenizer finds event-shaped words in code, the scan must too (a miss
    would silently skip a file). Every fixture, and library-shaped modules, are compared."""
    from zgcheck.sources import code_might_hold_training_code

    texts = [path.read_text(encoding="utf-8") for path in fixture_files() if path.suffix == ".py"]
    texts += [Path(module.__file__).read_text(encoding="utf-8") for module in (runner, ast)]
    assert len(texts) > 100
    for text in texts:
        assert code_might_hold_training_code(text) is _tokenizer_truth(text)


def test_words_only_in_strings_never_reach_the_parser(monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("parsed although no event word is code")

    monkeypatch.setattr(ast, "parse", refuse)
    text = '"""Kept for backward compatibility."""\nTABLE = {"step": "addmm_backward", "x": ".grad"}\n'
    assert precheck("lib.py", text).has_events is False
