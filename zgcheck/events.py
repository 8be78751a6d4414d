"""The intermediate form between extraction and the ordering analysis.

A region (a module's top level or a function) becomes a small tree of control flow
(`Seq`, `If`, `Loop`, `Try`, `Jump`, `Inline`) whose leaves are gradient events (`Ev`).
Everything that does not touch gradients or control flow is dropped.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

PathItem = tuple[str, object]  # ("loop", loop_id), ("if", condition text) or ("else", condition text)


@dataclass(frozen=True, eq=False)
class Event:
    """One zero / backward / step / manual update / zero_grad reference in the source."""

    id: int
    kind: str  # "zero" | "backward" | "step" | "manual" | "zero_ref" | "freeze" | "unfreeze" | "toggle" | "untoggle"
    text: str
    line: int
    column: int
    end_line: int
    end_column: int
    opt: str | None = None  # the optimizer zeroed or stepped (canonical key)
    models: tuple[str, ...] = ()  # models whose gradients a zero clears
    grad_base: str | None = None  # `p` of `p.grad = None` or of a manual update
    grad_var: str = ""  # `param` of a manual update keyed by the tensors a caller listed (`[w,b]`)
    unknown: bool = False  # a zero whose target cannot be seen (clears "maybe")
    weak: bool = False  # a "maybe" zero of `opt`: it is (re)built here, or steps an unseen closure
    unresolved: bool = False  # read from a call that could not be resolved (its name only): no safe fix
    via: str = ""  # the other module's helper this event happens in (located at the call)
    closure: "Seq | None" = None  # events of the closure passed to step()
    closure_name: str = ""
    # The optimizer calls a step closure at most once per step, or resets between its calls
    # (Adam, a sharpness-aware step): a closure without a reset piles nothing up.
    closure_once: bool = False
    target: str = ""  # the optimizer expression as written at this place (for fixes)
    closure_node: object = field(default=None, repr=False)  # the closure's FunctionDef
    subst: tuple[tuple[str, str], ...] = ()  # a helper's parameters renamed to the caller's arguments
    node: object = field(default=None, repr=False)


@dataclass(frozen=True, eq=False)
class Ev:
    event: Event
    path: tuple[PathItem, ...]


@dataclass(frozen=True, eq=False)
class Seq:
    items: tuple["Node", ...]


@dataclass(frozen=True, eq=False)
class If:
    cond: str
    then: Seq
    orelse: Seq
    accumulation: bool = False
    mode: str = "unknown"  # conditions.SWITCH / ITERATION / UNKNOWN


@dataclass(frozen=True, eq=False)
class Loop:
    id: int
    body: Seq
    orelse: Seq
    line: int
    infinite: bool = False
    virtual: bool = False
    via: str = ""  # a loop of another module's helper: that module reports what happens inside


@dataclass(frozen=True, eq=False)
class Try:
    body: Seq
    handlers: tuple[Seq, ...]
    orelse: Seq
    final: Seq | None


@dataclass(frozen=True, eq=False)
class Jump:
    kind: str  # "break" | "continue" | "return" | "raise"


@dataclass(frozen=True, eq=False)
class Inline:
    """A helper's body inlined at its call: its `return` ends only the helper."""

    body: Seq


Node = Union[Ev, Seq, If, Loop, Try, Jump, Inline]
EMPTY = Seq(())


@dataclass(frozen=True, eq=False)
class Region:
    """One analysed unit: a module's top level or a function treated as a loop body."""

    name: str
    body: Seq
    events: dict[int, Event]
    occurrences: tuple[Ev, ...]
    loops: dict[int, Loop]
    modes: dict[str, str] = field(default_factory=dict)  # condition text -> its mode
    shown: dict[str, str] = field(default_factory=dict)  # condition text -> as written (messages)

    def kinds(self) -> set[str]:
        return {e.kind for e in self.events.values()}


def children(node: Node) -> tuple:
    """The IR nodes directly below ``node``, in source order."""
    if isinstance(node, Seq):
        return node.items
    if isinstance(node, If):
        return (node.then, node.orelse)
    if isinstance(node, Loop):
        return (node.body, node.orelse)
    if isinstance(node, Try):
        return (node.body, *node.handlers, node.orelse) + ((node.final,) if node.final else ())
    if isinstance(node, Inline):
        return (node.body,)
    return ()


def walk(node: Node):
    """Every IR node below ``node``, depth first, in source order."""
    yield node
    for child in children(node):
        yield from walk(child)
