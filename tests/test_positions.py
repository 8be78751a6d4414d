"""Lazy, per-statement positions equal LibCST's PositionProvider for every node."""
from __future__ import annotations

from pathlib import Path

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, PositionProvider

from zgcheck.parsing import ParsedModule

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TRICKY = '''#!/usr/bin/env python
# -*- coding: utf-8 -*-
"""Doc."""

import torch; import os  # two statements on one line


@torch.no_grad()
# a comment between decorator and def
def f(x,
      y):  # continuation
    if x: return (y
                  .step())
    return x \\
        + 1
class A: pass
while True: opt.step(); break
'''


def sources() -> list:
    files = sorted(FIXTURES.rglob("*.py"))[:60]
    return [pytest.param(f.read_text(encoding="utf-8"), id=f.name) for f in files] + [pytest.param(TRICKY, id="tricky")]


@pytest.mark.parametrize("text", sources())
def test_positions_match_position_provider(text):
    module = cst.parse_module(text)
    parsed = ParsedModule(module)
    expected = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    inside = set()
    for stmt in module.body:  # header and footer nodes are never asked for
        inside.update(MetadataWrapper(module.with_changes(header=(), body=(stmt,), footer=()), unsafe_skip_copy=True).resolve(PositionProvider))
    checked = 0
    for node, want in expected.items():
        if node in inside and not isinstance(node, cst.Module):
            assert (parsed.start(node), parsed.end(node)) == (
                (want.start.line, want.start.column), (want.end.line, want.end.column)), type(node).__name__
            checked += 1
    assert checked
