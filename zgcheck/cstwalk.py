"""A read-only walk over a LibCST tree that makes the same visitor calls as ``node.visit``.

``CSTNode.visit`` rebuilds every node it passes (``_visit_and_replace_children`` constructs
a new dataclass per node, with validation) even for a read-only ``CSTVisitor``: most of the
time of a full-module visit goes there. :func:`walk` calls ``visit_<Type>`` (and skips the
children when it returns False) and ``leave_<Type>`` in the same order, and builds nothing.

The order of each node type's children is LibCST's own: it is read once per type by
recording the ``on_visit_attribute`` calls of one ``_visit_and_replace_children`` (every
``visit_*`` helper announces its field, present or not). Attribute hooks
(``visit_Call_func``) are not called: zgcheck's visitors have none.
``tests/test_cstwalk.py`` compares the calls with ``node.visit`` on every fixture.
"""
from __future__ import annotations

from collections.abc import Callable

import libcst as cst

_FIELDS: dict[type, tuple[str, ...]] = {}
# Fields of a type that its sample did not announce: strings, or children that were
# absent there (`FormattedStringExpression.format_spec` is announced only when present).
_UNSEEN: dict[type, tuple[str, ...]] = {}
_HOOKS_OF: dict[type, dict[type, tuple[Callable | None, Callable | None]]] = {}  # per visitor type
_SETTLED: dict[type, tuple[str, ...]] = {}  # reversed fields of types with nothing unseen


class _FieldRecorder(cst.CSTVisitor):
    """Records the fields a node's ``_visit_and_replace_children`` visits, in order, and
    never goes below the node's own children."""

    def __init__(self) -> None:
        self.fields: list[str] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        return False

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        self.fields.append(attribute)


def fields(node_type: type, node: cst.CSTNode) -> tuple[str, ...]:
    """Names of the fields that hold ``node``'s children, in LibCST's visiting order,
    learnt from the first node of its type (and again from one that holds a child in a
    field the earlier ones left out)."""
    found = _FIELDS.get(node_type)
    if found is not None:
        for name in _UNSEEN[node_type]:
            value = getattr(node, name)
            if value is not None and value != () and type(value) is not cst.MaybeSentinel:
                break
        else:
            return found
    recorder = _FieldRecorder()
    node._visit_and_replace_children(recorder)
    found = _FIELDS[node_type] = tuple(dict.fromkeys(recorder.fields))
    # Left out and empty here (None, (), MaybeSentinel): maybe a child in another node.
    _UNSEEN[node_type] = tuple(
        name for name in node_type.__dataclass_fields__
        if name not in found and (getattr(node, name) in (None, ()) or type(getattr(node, name)) is cst.MaybeSentinel)
    )
    return found


def _hooks(visitor_type: type, node_type: type) -> tuple[Callable | None, Callable | None]:
    """A visitor type's (visit, leave) hooks for one node type (walk caches them)."""
    name = node_type.__name__
    return _own(visitor_type, f"visit_{name}"), _own(visitor_type, f"leave_{name}")


def _own(visitor_type: type, name: str) -> Callable | None:
    """The visitor's own hook, or None where it only inherits CSTVisitor's no-op stub
    (every visit_<Type> / leave_<Type> exists there): no call per node for nothing."""
    found = getattr(visitor_type, name, None)
    return None if found is None or found is getattr(cst.CSTVisitor, name, None) else found


def _leaf_types() -> frozenset[type]:
    """Whitespace, comments, brackets, commas and operators: nodes whose subtrees hold only
    such nodes. About half of a tree; no zgcheck visitor looks at them."""
    bases = (cst.BaseBinaryOp, cst.BaseBooleanOp, cst.BaseCompOp, cst.BaseUnaryOp, cst.BaseAugOp)
    named = ("SimpleWhitespace", "ParenthesizedWhitespace", "TrailingWhitespace", "Newline", "EmptyLine", "Comment",
             "LeftParen", "RightParen", "LeftSquareBracket", "RightSquareBracket", "LeftCurlyBrace",
             "RightCurlyBrace", "Comma", "Dot", "Colon", "Semicolon", "AssignEqual", "Asynchronous", "ImportStar")
    found = {getattr(cst, name) for name in named}
    pending = list(bases)
    while pending:  # every subclass of the operator bases (not `dir(cst)`: lazy attributes)
        kind = pending.pop()
        pending.extend(kind.__subclasses__())
        if not kind.__name__.startswith("Base") and kind.__module__.startswith("libcst._nodes"):
            found.add(kind)  # (libcst.matchers subclasses them too)
    return frozenset(found)


_LEAVES: frozenset[type] = _leaf_types()
_SKIPPED: dict[type, frozenset[type]] = {}


def _skipped(visitor_type: type) -> frozenset[type]:
    """The leaf types a visitor can skip: all of them, unless it has a hook on one."""
    found = _SKIPPED.get(visitor_type)
    if found is None:
        hooked = any(_own(visitor_type, f"{kind}_{t.__name__}") for t in _LEAVES for kind in ("visit", "leave"))
        found = _SKIPPED[visitor_type] = frozenset() if hooked else _LEAVES
    return found


def walk(root: cst.CSTNode, visitor: cst.CSTVisitor) -> None:
    """Visit ``root`` and everything below it as ``root.visit(visitor)`` would, for a
    read-only visitor (its return values other than False are ignored). Leaf nodes
    (whitespace, brackets, operators) are not even entered unless the visitor hooks one."""
    visitor_type = type(visitor)
    if visitor_type.on_visit is not cst.CSTVisitor.on_visit or visitor_type.on_leave is not cst.CSTVisitor.on_leave:
        root.visit(visitor)  # a visitor with its own dispatch: the faithful, slow way
        return
    sentinel = cst.MaybeSentinel
    skip = _skipped(visitor_type)
    hooks = _HOOKS_OF.get(visitor_type)
    if hooks is None:
        hooks = _HOOKS_OF[visitor_type] = {}
    settled = _SETTLED  # types whose fields are known for every node of the type
    # Nodes to visit, and (leave hook, node) pairs to call once their children are done.
    stack: list = [root]
    pop, push, extend = stack.pop, stack.append, stack.extend
    while stack:
        node = pop()
        node_type = type(node)
        if node_type is tuple:
            node[0](visitor, node[1])
            continue
        pair = hooks.get(node_type)
        if pair is None:
            pair = hooks[node_type] = _hooks(visitor_type, node_type)
        visit, leave = pair
        if leave is not None:
            push((leave, node))
        if visit is not None and visit(visitor, node) is False:
            continue
        names = settled.get(node_type)
        if names is None:
            names = fields(node_type, node)[::-1]
            if not _UNSEEN[node_type]:
                settled[node_type] = names
        for name in names:  # last field first: the first child ends on top of the stack
            value = getattr(node, name)
            value_type = type(value)
            if value is None or value_type is sentinel or value_type in skip:
                continue
            if value_type is tuple or value_type is list:
                # Visited sequences hold nodes only, of one kind when they are leaves.
                if value and type(value[0]) not in skip:
                    extend(reversed(value))
            else:
                push(value)


def plain_code(node: cst.CSTNode) -> str | None:
    """The code of a name or a dotted name (`self.optimizer`) without parentheses or
    spaces, as ``Module.code_for_node`` would generate it; None for anything else. Most
    nodes whose text the analysis asks for are such, and generating them costs 50x more."""
    node_type = type(node)
    if node_type is cst.Name:
        return None if node.lpar else node.value
    if node_type is not cst.Attribute or node.lpar:
        return None
    dot = node.dot
    before, after = dot.whitespace_before, dot.whitespace_after
    if type(before) is not cst.SimpleWhitespace or type(after) is not cst.SimpleWhitespace or before.value or after.value:
        return None
    base = plain_code(node.value)
    return None if base is None else f"{base}.{node.attr.value}"


def is_docstring(stmt: cst.CSTNode) -> bool:
    """A statement that is only a string literal (a docstring where it comes first)."""
    return (
        isinstance(stmt, cst.SimpleStatementLine)
        and len(stmt.body) == 1
        and isinstance(stmt.body[0], cst.Expr)
        and isinstance(stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    )
