"""A finding's identity without line numbers, and repo-relative paths.

Baselines, SARIF ``partialFingerprints`` and GitLab's ``fingerprint`` share one identity:
the repo-relative file, the rule, the optimizer, the stripped text of the reported line
and the kinds of the events involved. Lines inserted above a finding leave it unchanged.
"""
from __future__ import annotations

import functools
import hashlib
import os

from zgcheck.diagnostics import Diagnostic


@functools.lru_cache(maxsize=1024)
def _git_root(directory: str) -> str | None:
    if os.path.exists(os.path.join(directory, ".git")):
        return directory
    parent = os.path.dirname(directory)
    return None if parent == directory else _git_root(parent)


def repo_root(directory: str) -> str:
    """The nearest folder at or above ``directory`` holding ``.git`` (a dir, or a file in
    worktrees and submodules), else the current folder."""
    return _git_root(os.path.abspath(directory)) or os.getcwd()


def repo_relative(path: str) -> str:
    """``path`` relative to its repository root, with ``/`` separators."""
    full = os.path.abspath(path)
    root = repo_root(os.path.dirname(full))
    rel = os.path.relpath(full, root) if full.startswith(root.rstrip(os.sep) + os.sep) else full
    return rel.replace(os.sep, "/")


def statement_text(diag: Diagnostic, lines: tuple[str, ...]) -> str:
    """The reported line with all whitespace squashed (re-indenting keeps the identity)."""
    row = diag.location.row
    return " ".join(lines[row - 1].split()) if 1 <= row <= len(lines) else ""


def fingerprint(diag: Diagnostic, lines: tuple[str, ...]) -> str:
    """A stable hex digest of what the finding is about, not of where it is."""
    parts = (
        repo_relative(diag.filename),
        diag.code,
        diag.optimizer,
        statement_text(diag, lines),
        ",".join(event.label for event in diag.related),
    )
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:32]
