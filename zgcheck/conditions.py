"""The condition model: how an ``if`` inside a loop may vary from iteration to iteration.

ARCHITECTURE.md, "Condition model", says why. In short, every condition is one of:

* ``SWITCH``    a mode switch: it reads only names the loop never assigns (``use_amp``,
  ``args.fp16``, ``self.cfg.x``, a parameter of the function that holds the loop) and
  calls nothing. It takes the same branch on every iteration of one run, so the events
  of its two branches never meet: the ordering analysis keeps the choice for the
  whole region.
* ``ITERATION`` a per-iteration condition: it reads the loop target, a name the loop
  assigns (a counter), an attribute that counts steps (``engine.state.iteration``,
  ``self.global_step``), a parameter of a per-batch function (``batch_idx``), or is an
  accumulation test (``%``, ``accum``, ``sync_gradients``).
* ``UNKNOWN``   anything else (it calls something): treated as varying, but never used
  as evidence that a zero and a step are misaligned.
"""
from __future__ import annotations

import re

import libcst as cst

SWITCH = "switch"
ITERATION = "iteration"
UNKNOWN = "unknown"
MODE_ORDER = (SWITCH, UNKNOWN, ITERATION)  # when one text has several modes, the most varying wins

# Attributes that count iterations wherever they live (ignite, Lightning, trainers).
ITERATION_ATTRS = frozenset(
    {"iteration", "iterations", "global_step", "step", "steps", "current_epoch", "epoch",
     "batch_idx", "sync_gradients", "it", "iter", "n_iter", "num_steps", "step_count"}
)
ACCUMULATION = re.compile(r"%|accum|sync_grad", re.I)
PER_ITERATION = re.compile(r"%|sync_grad", re.I)  # `% k` and Accelerate's sync flag vary by nature
_STRINGS = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_CHAIN = re.compile(r"(?<![\w.])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(\s*\()?")
_KEYWORDS = frozenset({"and", "or", "not", "is", "in", "None", "True", "False", "if", "else", "lambda"})


def is_accumulation_condition(cond: str) -> bool:
    return bool(ACCUMULATION.search(cond))


def classify(cond: str, variant: frozenset[str]) -> str:
    """The mode of condition text ``cond``, given the names that vary per iteration."""
    text = _STRINGS.sub("''", cond)
    calls = False
    iteration = bool(PER_ITERATION.search(text))
    for match in _CHAIN.finditer(text):
        chain, called = match.group(1), match.group(2)
        if chain in _KEYWORDS:
            continue
        parts = chain.split(".")
        if called:
            calls = True
            parts = parts[:-1]  # `x.item()` reads x; the method name is no variable
        if not parts:
            continue
        if any(".".join(parts[: i + 1]) in variant for i in range(len(parts))):
            iteration = True
        if len(parts) > 1 and parts[-1] in ITERATION_ATTRS:
            iteration = True
    if iteration:
        return ITERATION
    return UNKNOWN if calls else SWITCH


def _targets(node: cst.BaseExpression, names: set[str]) -> None:
    if isinstance(node, (cst.Tuple, cst.List)):
        for element in node.elements:
            _targets(element.value, names)
    elif isinstance(node, cst.StarredElement):
        _targets(node.value, names)
    elif isinstance(node, (cst.Name, cst.Attribute)):
        text = _dotted(node)
        if text:
            names.add(text)
    elif isinstance(node, cst.Subscript):
        _targets(node.value, names)


def _statement(node: cst.CSTNode, names: set[str]) -> None:
    """Assignments are statements: walking statements (never expressions) finds them at a
    fraction of a full visit. Walrus targets inside expressions are not seen."""
    if isinstance(node, cst.SimpleStatementLine):
        for small in node.body:
            if isinstance(small, cst.Assign):
                for target in small.targets:
                    _targets(target.target, names)
            elif isinstance(small, cst.AugAssign) or (isinstance(small, cst.AnnAssign) and small.value is not None):
                _targets(small.target, names)
        return
    if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
        return
    if isinstance(node, cst.For):
        _targets(node.target, names)
    elif isinstance(node, cst.With):
        for item in node.items:
            if item.asname is not None:
                _targets(item.asname.name, names)
    elif isinstance(node, cst.ExceptHandler) and node.name is not None:
        _targets(node.name.name, names)
    for field_name in ("body", "orelse", "handlers", "finalbody", "cases"):
        value = getattr(node, field_name, None)
        if isinstance(value, (cst.Else, cst.Finally)):
            value = value.body
        if isinstance(value, cst.IndentedBlock):
            children = value.body
        elif isinstance(value, cst.SimpleStatementSuite):
            children = (cst.SimpleStatementLine(value.body),)
        elif isinstance(value, cst.If):
            children = (value,)  # elif
        elif isinstance(value, (list, tuple)):
            children = value  # except handlers, match cases
        else:
            continue
        for child in children:
            _statement(child, names)


def _dotted(node: cst.BaseExpression) -> str:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr.value}" if base else ""
    return ""


def assigned_names(nodes) -> frozenset[str]:
    """Every name a sequence of statements (or one loop statement) assigns."""
    names: set[str] = set()
    for node in nodes:
        _statement(node, names)
    return frozenset(names)
