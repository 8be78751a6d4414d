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

from zgcheck.cstwalk import walk as walk_cst

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


class _Assigned(cst.CSTVisitor):
    """Names (and dotted attribute targets) a block of statements binds."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def _target(self, node: cst.BaseExpression) -> None:
        if isinstance(node, (cst.Tuple, cst.List)):
            for element in node.elements:
                self._target(element.value)
        elif isinstance(node, cst.StarredElement):
            self._target(node.value)
        elif isinstance(node, cst.Name):
            self.names.add(node.value)
        elif isinstance(node, cst.Attribute):
            text = _dotted(node)
            if text:
                self.names.add(text)
        elif isinstance(node, cst.Subscript):
            self._target(node.value)

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self._target(node.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._target(node.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._target(node.target)

    def visit_For(self, node: cst.For) -> None:
        self._target(node.target)

    def visit_CompFor(self, node: cst.CompFor) -> bool:
        return False  # comprehension variables do not leak

    def visit_AsName(self, node: cst.AsName) -> None:
        self._target(node.name)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._target(node.target)

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False


def _dotted(node: cst.BaseExpression) -> str:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr.value}" if base else ""
    return ""


def assigned_names(nodes) -> frozenset[str]:
    """Every name a sequence of statements (or one loop statement) assigns."""
    visitor = _Assigned()
    for node in nodes:
        walk_cst(node, visitor)
    return frozenset(visitor.names)
