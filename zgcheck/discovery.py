"""Which files to check: explicit paths always, directories walked with sensible excludes.

Hidden folders, virtual environments, caches and build output are skipped, and so is
whatever a ``.gitignore`` on the way excludes (read with pathspec, nested files too).
A directory reached twice through symlinks is reported once, not walked forever.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Iterator

from zgcheck.diagnostics import FileProblem

# As ruff's defaults. Not `env`: in RL code that is a package of environments; a virtual
# environment of any name is recognised by its pyvenv.cfg (a conda one by conda-meta).
SKIP_DIRS = frozenset(
    {"__pycache__", "build", "dist", "site-packages", "node_modules", "venv", "__pypackages__",
     ".git", ".hg", ".svn", ".tox", ".nox", ".eggs", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
)
SUFFIXES = (".py", ".ipynb")
# (path, is_dir, named explicitly) -> skip it? Configuration's exclude patterns plug in here.
Excluder = Callable[[str, bool, bool], bool]


@dataclass
class Discovery:
    """Files found, in a stable order, and the paths that could not be walked."""

    files: list[str] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)


def _gitignore(directory: str):
    path = os.path.join(directory, ".gitignore")
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines(lines)


def _ignored(path: str, is_dir: bool, specs: list) -> bool:
    for base, spec in specs:
        rel = os.path.relpath(path, base).replace(os.sep, "/")
        if spec.match_file(rel + ("/" if is_dir else "")):
            return True
    return False


def is_venv(path: str) -> bool:
    return os.path.exists(os.path.join(path, "pyvenv.cfg")) or os.path.isdir(os.path.join(path, "conda-meta"))


def discover(paths: tuple[str, ...] | list[str], respect_gitignore: bool = True, excluded: Excluder | None = None) -> Discovery:
    """Files under ``paths``; ``excluded`` adds the configuration's exclude patterns."""
    found = Discovery()
    skip = excluded or (lambda path, is_dir, explicit: False)
    for path in paths:
        if skip(path, os.path.isdir(path), True):
            continue
        if os.path.isdir(path):
            found.files.extend(_walk(path, found, respect_gitignore, skip))
        elif os.path.lexists(path):
            found.files.append(path)
        else:
            found.problems.append(FileProblem(path, "io", "no such file or directory"))
    seen: set[str] = set()
    unique = [f for f in found.files if not (f in seen or seen.add(f))]
    found.files = unique
    return found


def _walk(root: str, found: Discovery, respect_gitignore: bool, skip: Excluder) -> Iterator[str]:
    visited: set[str] = set()
    specs: list = []
    if respect_gitignore:
        specs = _parent_gitignores(root)
    yield from _walk_dir(root, found, visited, specs, respect_gitignore, skip)


def _parent_gitignores(root: str) -> list:
    """.gitignore files of the folders above ``root`` up to the repository top."""
    specs = []
    current = os.path.abspath(root)
    while True:
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
        spec = _gitignore(current)
        if spec is not None:
            specs.insert(0, (current, spec))
        if os.path.isdir(os.path.join(current, ".git")):
            break
    return specs


def _walk_dir(directory: str, found: Discovery, visited: set[str], specs: list, respect: bool, skip: Excluder) -> Iterator[str]:
    real = os.path.realpath(directory)
    if real in visited:
        parent = os.path.realpath(os.path.dirname(directory))
        if parent == real or parent.startswith(real + os.sep):
            found.problems.append(FileProblem(directory, "io", "directory loop (a symlink back to a parent folder); skipped"))
        return  # otherwise it was reached through another link and is already checked
    visited.add(real)
    if respect:
        spec = _gitignore(directory)
        if spec is not None:
            specs = specs + [(os.path.abspath(directory), spec)]
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        found.problems.append(FileProblem(directory, "io", f"cannot list directory: {exc.strerror or exc}"))
        return
    for entry in entries:
        path = entry.path
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            if entry.name.startswith(".") or entry.name in SKIP_DIRS or is_venv(path):
                continue
            if specs and _ignored(os.path.abspath(path), True, specs) or skip(path, True, False):
                continue
            yield from _walk_dir(path, found, visited, specs, respect, skip)
        elif entry.name.endswith(SUFFIXES):
            if specs and _ignored(os.path.abspath(path), False, specs) or skip(path, False, False):
                continue
            yield path
