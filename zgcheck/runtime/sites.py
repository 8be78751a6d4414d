"""Where an event happened: the innermost frame of the user's own code on the stack.

A backward, zero or step call passes through torch (and maybe through a trainer library)
before a hook sees it; the line worth showing is the user's `loss.backward()` or
`trainer.fit()`, so frames in torch, in zgcheck itself, in the standard library and in
installed packages are skipped. Sites are cached per (code object, instruction), so
capturing one on every event costs a short frame walk and a dict lookup.
"""
from __future__ import annotations

import linecache
import os
import sys
import sysconfig
from dataclasses import dataclass
from types import CodeType, FrameType

_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the zgcheck package


@dataclass(frozen=True)
class Site:
    """A place in user code: file, 1-based line and column."""

    filename: str
    line: int
    column: int = 1

    @property
    def text(self) -> str:
        """The source line, stripped of indentation and a trailing comment."""
        line = linecache.getline(self.filename, self.line).strip()
        code = line.split("  #", 1)[0].split(" # ", 1)[0].rstrip()
        return code if len(code) <= 60 else code[:57] + "..."

    def label(self, relative_to: "Site | None" = None) -> str:
        """`optimizer.step() (line 12)`, or `(other.py:12)` when in another file than ``relative_to``."""
        where = f"line {self.line}"
        if relative_to is not None and relative_to.filename != self.filename:
            where = f"{os.path.basename(self.filename)}:{self.line}"
        return f"{self.text or '<unknown>'} ({where})"


def _library_roots() -> tuple[str, ...]:
    roots = {_HERE}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.add(os.path.realpath(path))
    return tuple(sorted(roots))


_ROOTS = _library_roots()
_USER: dict[str, bool] = {}
# By code object identity: equal code objects of two files compare equal (the filename is not
# part of code equality), so the object itself is kept and checked.
_SITES: dict[tuple[int, int], tuple[CodeType, Site]] = {}


def _is_user(filename: str) -> bool:
    known = _USER.get(filename)
    if known is None:
        if filename.startswith("<") and not filename.startswith("<ipython-input"):
            known = False  # <frozen runpy>, <string>: not something to show
        else:
            real = os.path.realpath(filename)
            known = not any(real == root or real.startswith(root + os.sep) for root in _ROOTS)
        _USER[filename] = known
    return known


def _site_of(frame: FrameType) -> Site:
    key = (id(frame.f_code), frame.f_lasti)
    known = _SITES.get(key)
    if known is not None and known[0] is frame.f_code:
        return known[1]
    line, column = frame.f_lineno, 1
    positions = getattr(frame.f_code, "co_positions", None)  # Python 3.11+
    if positions is not None and frame.f_lasti >= 0:
        for index, (start, _end, col, _end_col) in enumerate(positions()):
            if index == frame.f_lasti // 2:
                line = start or line
                column = (col or 0) + 1
                break
    site = Site(frame.f_code.co_filename, line, column)
    _SITES[key] = (frame.f_code, site)
    return site


def user_site(skip: int = 1) -> Site | None:
    """The innermost user frame above the caller (``skip`` frames up), or None."""
    try:
        frame: FrameType | None = sys._getframe(skip + 1)
    except ValueError:
        return None
    while frame is not None:
        if _is_user(frame.f_code.co_filename):
            return _site_of(frame)
        frame = frame.f_back
    return None
