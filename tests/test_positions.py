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




def _long_class() -> str:
    """Classes long enough to be split into their statements (parsing.SPLIT_LINES), one
    nested, one indented with tabs, with decorators, comments and blank lines around."""
    methods = "".join(
        f"\n        # method {i}\n        @staticmethod\n        def m{i}(x,\n               y=({i},\n                  2)):\n"
        f'            """Doc\n            {i}."""\n            if x: return y.step()  # {i}\n            return (x\n                    .backward())\n'
        for i in range(12)
    )
    tabbed = "".join(f"\tdef t{i}(self):\n\t\tfor p in self.ps:\n\t\t\tp.grad = None\n\n" for i in range(25))
    long_function = (
        "\n\n@torch.no_grad()\n# between decorator and def\ndef train(model,\n          loader):  # params\n"
        '    """Train.\n\n    Long docstring.\n    """\n'
        + "".join(f"    x{i} = model(loader[{i}]).sum()  # line {i}\n" for i in range(8))
        + "    def inner(batch):\n" + "".join(f"        y{i} = batch.step({i})\n" for i in range(18))
        + "        # a comment line inside inner\n\n"
        + "    @staticmethod\n    # between\n    def longer(batch):  # split too (long)\n"
        + "".join(f"        z{i} = (batch.step({i}) +\n              {i}); w = {i}\n\n" for i in range(24))
        + "        if batch: return z0\n"
        + "        return (y0 +\n                y1)\n\n    # footer comment of train\n"
        + "    for batch in loader:\n        inner(batch).backward()\n\n        # inner footer\n"
    )
    return (
        "import torch\n\n\n@decorate(1)\nclass Outer(Base,\n            metaclass=M):\n    x = 1\n\n"
        "    class Inner:" + methods + "\n    # trailing comment of Outer\n\n"
        "    def last(self): return self.opt.step()\n\n\nclass Tabs:\n" + tabbed + "\t# end of Tabs\n" + long_function + "\nfooter = 1\n"
    )


def sources() -> list:
    files = sorted(FIXTURES.rglob("*.py"))[:60]
    return [pytest.param(f.read_text(encoding="utf-8"), id=f.name) for f in files] + [
        pytest.param(TRICKY, id="tricky"), pytest.param(_long_class(), id="long-classes")]


@pytest.mark.parametrize("reverse", [False, True], ids=["inner-first", "outer-first"])
@pytest.mark.parametrize("text", sources())
def test_positions_match_position_provider(text, reverse):
    module = cst.parse_module(text)
    parsed = ParsedModule(module)
    expected = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    inside = set()
    for stmt in module.body:  # header and footer nodes are never asked for
        inside.update(MetadataWrapper(module.with_changes(header=(), body=(stmt,), footer=()), unsafe_skip_copy=True).resolve(PositionProvider))
    checked = 0
    for node, want in (reversed(expected.items()) if reverse else expected.items()):
        if node in inside and not isinstance(node, cst.Module):
            assert (parsed.start(node), parsed.end(node)) == (
                (want.start.line, want.start.column), (want.end.line, want.end.column)), type(node).__name__
            checked += 1
    assert checked


def _layout_module(text: str, sliced: bool) -> tuple[cst.Module, ParsedModule]:
    """As the analysis builds it: the prefilter's layout, and its sliced text if asked."""
    import ast

    from zgcheck.layout import layout
    from zgcheck.prefilter import EventScan

    parsed_text = text
    if sliced:
        cut, _ = EventScan(text, ast.parse(text)).sliced()
        parsed_text = cut or text
    module = cst.parse_module(parsed_text)
    return module, ParsedModule(module, source=text, layout=layout(ast.parse(text)), parsed_text=parsed_text)


@pytest.mark.parametrize("sliced", [False, True], ids=["whole", "sliced"])
@pytest.mark.parametrize("reverse", [False, True], ids=["inner-first", "outer-first"])
@pytest.mark.parametrize("text", sources())
def test_positions_placed_by_the_layout_match_position_provider(text, reverse, sliced):
    """Statements placed by the prefilter's `ast` instead of counted code: the same
    positions for every node, and the layout is never found wrong (never dropped)."""
    module, parsed = _layout_module(text, sliced)
    expected = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    inside = set()
    for stmt in module.body:
        inside.update(MetadataWrapper(module.with_changes(header=(), body=(stmt,), footer=()), unsafe_skip_copy=True).resolve(PositionProvider))
    checked = 0
    for node, want in (reversed(expected.items()) if reverse else expected.items()):
        if node in inside and not isinstance(node, cst.Module):
            assert (parsed.start(node), parsed.end(node)) == (
                (want.start.line, want.start.column), (want.end.line, want.end.column)), type(node).__name__
            checked += 1
    assert checked
    assert parsed.layout is not None


def test_a_wrong_layout_is_dropped_for_counted_code():
    """Were the layout ever wrong (a LibCST that groups lines otherwise), positions
    stay right: the first statement resolved against it disagrees and counting takes over."""
    import ast

    from zgcheck.layout import Block, layout

    text = TRICKY
    module = cst.parse_module(text)
    good = layout(ast.parse(text))
    shifted = Block(tuple(f + 1 for f in good.top.firsts), tuple(s + 1 for s in good.top.starts))
    parsed = ParsedModule(module, layout=type(good)(shifted, good.bodies), parsed_text=text)
    expected = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    call = next(n for n in expected if isinstance(n, cst.Call) and parsed.code(n).endswith(".step()"))
    want = expected[call]
    assert parsed.start(call) == (want.start.line, want.start.column)
    assert parsed.layout is None
