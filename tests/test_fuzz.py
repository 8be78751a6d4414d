"""Crash fuzzing: generated and mutated programs never make zgcheck raise or report a crash.

CI runs a small derandomized profile; a long run by hand:
    ZGCHECK_FUZZ_EXAMPLES=5000 python -m pytest -q tests/test_fuzz.py
"""
from __future__ import annotations

import ast
import os
import random
import re
import warnings
from pathlib import Path

import hypothesmith
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zgcheck.diagnostics import FileResult
from zgcheck.sources import source_lines
from zgcheck.runner import check_bytes, check_source
from zgcheck.settings import Settings

EXAMPLES = int(os.environ.get("ZGCHECK_FUZZ_EXAMPLES", "0"))
# Derandomized in CI so a red build is reproducible; random by hand so each run finds new inputs.
FUZZ = settings(
    derandomize=EXAMPLES == 0,
    max_examples=EXAMPLES or 100,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SEEDS = sorted(p.read_bytes() for p in FIXTURES.rglob("*.py"))
TAIL = "\nfor batch in loader:\n    loss = model(batch)\n    loss.backward()\n    optimizer.zero_grad()\n    optimizer.step()\n"
CLEAN_PROBLEMS = {"syntax", "decode", "limit"}
# hypothesmith compiles what it generates; the warnings of that are noise here
pytestmark = pytest.mark.filterwarnings("ignore::SyntaxWarning")


def assert_sound(result: FileResult, text: str | None) -> None:
    """No crash (an "internal" problem is a caught crash); positions inside the file."""
    assert isinstance(result, FileResult)
    assert all(p.kind in CLEAN_PROBLEMS and "\n" not in p.message for p in result.problems), result.problems
    if text is None or result.problems:
        return
    lines = source_lines(text) or [""]
    for diag in result.diagnostics:
        row, col = diag.location.row, diag.location.column
        assert 1 <= row <= len(lines) and 1 <= col <= len(lines[row - 1]) + 1, (diag, lines[row - 1 : row])
        assert (diag.end_location.row, diag.end_location.column) >= (row, col)


def is_valid(text: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


@FUZZ
@given(hypothesmith.from_grammar())
def test_generated_programs_never_crash(program):
    """hypothesmith programs, alone and with a training loop appended so the analysis runs."""
    for text in (program, program + TAIL):
        result = check_source(text, "gen.py", Settings())
        assert_sound(result, text)
        if is_valid(text):
            # LibCST's tokenizer rejects a few dedent/whitespace oddities CPython accepts;
            # those get their own clean message ("syntax not supported by the parser").
            assert not [p for p in result.problems if p.kind == "syntax" and "not supported" not in p.message], result.problems


def _tokens(line: str) -> list[str]:
    return re.findall(r"\w+|\s+|.", line)


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One mutation of the kinds that editing accidents and truncation produce."""
    lines = data.split(b"\n")
    kind = rng.choice(["drop_token", "shuffle", "duplicate", "delete", "flip", "indent", "dedent", "truncate", "swap"])
    i = rng.randrange(len(lines))
    if kind == "drop_token":
        tokens = _tokens(lines[i].decode("utf-8", "replace"))
        if tokens:
            del tokens[rng.randrange(len(tokens))]
        lines[i] = "".join(tokens).encode()
    elif kind == "shuffle":
        j = min(len(lines), i + rng.randint(2, 8))
        block = lines[i:j]
        rng.shuffle(block)
        lines[i:j] = block
    elif kind == "duplicate":
        lines.insert(i, lines[i])
    elif kind == "delete":
        del lines[i]
    elif kind == "swap":
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == "indent":
        lines[i] = rng.choice([b"    ", b"\t", b"  ", b" "]) + lines[i]
    elif kind == "dedent":
        lines[i] = lines[i][rng.randint(1, 4):]
    elif kind == "truncate":
        return data[: rng.randrange(len(data) + 1)]
    else:
        flat = bytearray(data)
        if flat:
            flat[rng.randrange(len(flat))] ^= 1 << rng.randrange(8)
        return bytes(flat)
    return b"\n".join(lines)


@FUZZ
@given(st.sampled_from(SEEDS), st.integers(1, 5), st.randoms(use_true_random=False))
def test_mutated_training_code_never_crashes(seed, count, rng):
    data = seed
    for _ in range(count):
        data = mutate(data, rng)
    result = check_bytes(data, "mutant.py", Settings())
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    assert_sound(result, text)
    if text is not None and "\r" not in text and "\x0c" not in text and is_valid(text):
        # LibCST's tokenizer rejects a few dedent/whitespace oddities CPython accepts; those
        # get their own clean message ("syntax not supported by the parser").
        assert not [p for p in result.problems if p.kind == "syntax" and "not supported" not in p.message], result.problems


def test_every_seed_is_analysed_cleanly():
    for seed in SEEDS:
        assert_sound(check_bytes(seed, "seed.py", Settings()), seed.decode())
