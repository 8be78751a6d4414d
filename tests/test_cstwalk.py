"""cstwalk.walk makes exactly the visitor calls that LibCST's own visit makes."""
from __future__ import annotations

import libcst as cst
import pytest
from fixture_expectations import fixture_files

from zgcheck.cstwalk import walk


class _Recorder(cst.CSTVisitor):
    """Records every visit and leave through visit_<Type>/leave_<Type> methods, and
    skips the children of lambdas (a visit returning False)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __getattr__(self, name: str):
        raise AttributeError(name)


def _recorder_class() -> type:
    methods = {}
    for name in dir(cst):
        node_type = getattr(cst, name)
        if isinstance(node_type, type) and issubclass(node_type, cst.CSTNode) and not name.startswith("Base"):
            def visit(self, node, _name=name):
                self.calls.append(("visit", id(node)))
                return _name != "Lambda"

            def leave(self, node, _name=name):
                self.calls.append(("leave", id(node)))

            methods[f"visit_{name}"] = visit
            methods[f"leave_{name}"] = leave
    return type("AllNodes", (_Recorder,), methods)


ALL_NODES = _recorder_class()
SOURCES = [p for p in fixture_files() if p.suffix == ".py"]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_walk_makes_the_calls_visit_makes(path):
    module = cst.parse_module(path.read_text(encoding="utf-8"))
    expected, got = ALL_NODES(), ALL_NODES()
    module.visit(expected)
    walk(module, got)
    assert got.calls == expected.calls
    assert len(got.calls) > 100


def test_walk_of_every_statement_kind():
    code = (
        "import a.b as c\nfrom . import (x, y)\nfrom m import *\n@d\nasync def f(p, /, q=1, *r, s, **t) -> int:\n"
        "    global g\n    async with a as (b, c), d:\n        async for i in j:\n            await k\n"
        "    try:\n        pass\n    except* E as e:\n        raise X from e\n    else:\n        del z[1:2, ::3]\n"
        "    finally:\n        assert q, 'm'\n    match p:\n        case [1, *rest] | {'k': v, **kw} if v:\n"
        "            return f'{v!r:>{w}}'\n        case C(a=1) as cc:\n            yield from cc\n"
        "    x: int = (lambda u, *, w=2: u @ w)(1)\n    while not x: x += 1; continue\n"
        "class K(B, metaclass=M):\n    v = [i for i in range(3) if i] + list({j: j for j in ()}) + [*{1, 2}]\n"
        "print(~a if b else -c, a < b <= c, not a or b and c, a[...], (yield), x := 1) if 0 else None\n"
    )
    module = cst.parse_module(code)
    expected, got = ALL_NODES(), ALL_NODES()
    module.visit(expected)
    walk(module, got)
    assert got.calls == expected.calls


def test_plain_code_equals_generated_code_on_every_fixture():
    """The shortcut for names and dotted names gives LibCST's own text, or declines."""
    from zgcheck.cstwalk import plain_code

    class Collect(cst.CSTVisitor):
        def __init__(self) -> None:
            self.nodes: list[cst.CSTNode] = []

        def on_visit(self, node: cst.CSTNode) -> bool:
            self.nodes.append(node)
            return True

    texts = [p.read_text(encoding="utf-8") for p in fixture_files()]
    texts.append("a = (b).c + d . e + (f.g) + h.\\\n    i + j[0].k\n")
    shortcuts = 0
    for text in texts:
        module = cst.parse_module(text)
        collect = Collect()
        module.visit(collect)
        for node in collect.nodes:
            plain = plain_code(node)
            if plain is not None:
                assert plain == module.code_for_node(node)
                shortcuts += 1
            elif isinstance(node, (cst.Name, cst.Attribute)) and not node.lpar and isinstance(node, cst.Name):
                raise AssertionError("a bare name declined")
    assert shortcuts > 1000


def _non_leaf_recorder_class() -> type:
    """Hooks on every node type except whitespace, brackets, commas and operators: the
    shape of zgcheck's visitors, for which walk does not enter those leaves."""
    from zgcheck.cstwalk import _LEAVES

    methods = {k: v for k, v in vars(ALL_NODES).items() if k.startswith(("visit_", "leave_"))
               and getattr(cst, k.split("_", 1)[1]) not in _LEAVES}
    return type("NonLeaves", (_Recorder,), methods)


NON_LEAVES = _non_leaf_recorder_class()


@pytest.mark.parametrize("path", SOURCES[::3], ids=lambda p: p.name)
def test_walk_that_skips_leaves_makes_the_same_calls(path):
    module = cst.parse_module(path.read_text(encoding="utf-8"))
    expected, got = NON_LEAVES(), NON_LEAVES()
    module.visit(expected)
    walk(module, got)
    assert got.calls == expected.calls
    assert len(got.calls) > 50


def test_leaves_hold_only_leaves():
    """Skipping a leaf must never hide a node a visitor hooks: every child of every leaf
    met in the fixtures is a leaf too."""
    from zgcheck.cstwalk import _LEAVES

    class Check(cst.CSTVisitor):
        def on_visit(self, node: cst.CSTNode) -> bool:
            if type(node) in _LEAVES:
                assert all(type(child) in _LEAVES for child in node.children), type(node).__name__
            return True

    for path in SOURCES:
        cst.parse_module(path.read_text(encoding="utf-8")).visit(Check())
