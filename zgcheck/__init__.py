"""zgcheck: a linter and auto-fixer for gradient zeroing in PyTorch training loops.

The public surface is small: :func:`check_source`, :func:`check_paths`, the
:class:`Diagnostic` value and the :data:`RULES` registry (loaded lazily).
"""
from __future__ import annotations

__version__ = "0.5.0"

__all__ = ["__version__", "check_source", "check_paths", "Diagnostic", "FileResult", "RULES", "Settings"]


def __getattr__(name: str):
    # Lazy: `zgcheck --version` or a file with no training loop never imports LibCST.
    if name == "check_source":
        from zgcheck.runner import check_source

        return check_source
    if name == "check_paths":
        from zgcheck.runner import check_paths

        return check_paths
    if name in ("Diagnostic", "FileResult"):
        from zgcheck import diagnostics

        return getattr(diagnostics, name)
    if name == "RULES":
        from zgcheck.rules import RULES

        return RULES
    if name == "Settings":
        from zgcheck.settings import Settings

        return Settings
    raise AttributeError(name)
