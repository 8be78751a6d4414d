"""Freezing: statements that stop (or restart) gradients flowing into a module's parameters.

They become events of the control flow (kinds ``freeze`` / ``unfreeze`` / ``toggle`` /
``untoggle``) so that the leak analysis knows, along each path, which modules a backward
cannot write into (GUIDE section 1, "Which optimizers a backward reaches"):

* ``D.requires_grad_(False)``, ``for p in D.parameters(): p.requires_grad = False``;
* helpers named for it: ``set_requires_grad([D_A, D_B], False)``, ``toggle_grad(D, True)``,
  ``requires_grad(D, False)``, ``freeze(D)`` / ``unfreeze(D)``;
* Lightning's ``self.toggle_optimizer(opt_g)`` (every parameter not in ``opt_g`` frozen)
  and ``self.untoggle_optimizer(opt_g)``.

A flag that is not a literal, or targets that cannot be named, give an *unknown* freeze:
the modules may be frozen, so no leak is claimed through them.
"""
from __future__ import annotations

import re
from typing import Callable

import libcst as cst

from zgcheck.recognize import ModuleFacts, callee_name

ALL = "*"  # every module (targets that cannot be named)
FREEZE_KINDS = frozenset({"freeze", "unfreeze", "toggle", "untoggle"})
HELPER_RE = re.compile(r"requires_grad|toggle_grad|^(un)?freeze", re.I)
FLAG_KEYWORDS = frozenset({"requires_grad", "flag", "value", "on", "on_or_off", "mode", "enabled", "trainable", "requires"})

# (kind, models, optimizer, unknown)
Freeze = tuple[str, tuple[str, ...], "str | None", bool]


def from_call(call: cst.Call, text: Callable[[cst.CSTNode], str], facts: ModuleFacts,
              param_vars: dict[str, str]) -> Freeze | None:
    """The freeze a call performs, or None when it is no freezing call."""
    name = callee_name(call)
    if name in ("toggle_optimizer", "untoggle_optimizer"):
        kind = "toggle" if name == "toggle_optimizer" else "untoggle"
        opt = facts.canon(text(call.args[0].value)) if call.args else None
        return kind, (), opt, opt is None and kind == "toggle"
    if name == "requires_grad_" and isinstance(call.func, cst.Attribute):
        flag = _literal(call.args[0].value) if call.args else True
        return _freeze(flag, _targets_of(text(call.func.value), facts, param_vars))
    if name in ("freeze", "unfreeze") and not call.args and isinstance(call.func, cst.Attribute):
        # Lightning's `module.freeze()`: every parameter of the module.
        return _freeze(name == "unfreeze", _targets_of(text(call.func.value), facts, param_vars))
    if name != "requires_grad_" and HELPER_RE.search(name) and call.args:
        if name.lower().startswith(("freeze", "unfreeze")):
            flag: bool | None = name.lower().startswith("unfreeze")
        else:
            flag = _helper_flag(call)
        return _freeze(flag, _named(call.args[0].value, text, facts))
    return None


def from_assignment(target: str, value: cst.BaseExpression, value_text: str, facts: ModuleFacts,
                    param_vars: dict[str, str]) -> Freeze | None:
    """``p.requires_grad = False`` (``p`` walking ``D.parameters()``)."""
    if not target.endswith(".requires_grad"):
        return None
    base = target[: -len(".requires_grad")]
    flag = {"True": True, "False": False}.get(value_text, _literal(value))
    return _freeze(flag, _targets_of(base, facts, param_vars))


def _freeze(flag: bool | None, models: tuple[str, ...]) -> Freeze:
    if flag is None:
        return "freeze", models, None, True
    return ("unfreeze" if flag else "freeze"), models, None, False


def _literal(node: cst.BaseExpression) -> bool | None:
    if isinstance(node, cst.Name) and node.value in ("True", "False"):
        return node.value == "True"
    return None


def _helper_flag(call: cst.Call) -> bool | None:
    for arg in call.args[1:]:
        if arg.keyword is None or arg.keyword.value in FLAG_KEYWORDS:
            return _literal(arg.value)
    return None  # the helper's default: unknown


def _named(node: cst.BaseExpression, text, facts: ModuleFacts) -> tuple[str, ...]:
    """``D`` / ``self.netD`` / ``[self.netD_A, self.netD_B]`` as module keys."""
    elements = node.elements if isinstance(node, (cst.List, cst.Tuple)) else [node]
    found: list[str] = []
    for element in elements:
        value = element.value if isinstance(element, cst.BaseElement) else element
        if not isinstance(value, (cst.Name, cst.Attribute)):
            return (ALL,)
        found.extend(_expand(text(value), facts))
    return tuple(found)


def _targets_of(base: str, facts: ModuleFacts, param_vars: dict[str, str]) -> tuple[str, ...]:
    """The modules whose parameters ``base`` is: ``p`` of ``for p in D.parameters()``."""
    source = param_vars.get(base)
    if source is None:
        return _expand(base, facts)
    owners = facts.param_owners(source)
    if not owners:
        return (ALL,)
    return tuple(m for owner in sorted(owners) for m in _expand(owner, facts))


def _expand(key: str, facts: ModuleFacts) -> tuple[str, ...]:
    """A loop variable over a literal list of modules stands for each of them."""
    root, dot, rest = key.partition(".")
    source = facts.loop_vars.get(root)
    if source is None:
        return (key,)
    match = re.fullmatch(r"[\[(](.*)[\])]", source)
    if not match:
        return (ALL,)
    items = [i for i in match.group(1).split(",") if i]
    if not all(re.fullmatch(r"[\w.]+", i) for i in items):
        return (ALL,)
    return tuple(i + dot + rest for i in items)
