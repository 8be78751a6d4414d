"""Run settings: which rules run, which files are skipped, what the project teaches.

:class:`Options` is one layer of raw choices (a ``[tool.zgcheck]`` table or the command
line); :func:`build_settings` folds the layers, file first and CLI last, into the frozen
:class:`Settings` one file is checked with. Reading the files lives in ``config.py``.
"""
from __future__ import annotations

import difflib
import functools
import os
from dataclasses import dataclass

ALL_CODES = ("ZG001", "ZG002", "ZG003", "ZG004", "ZG005", "ZG006", "ZG007", "ZG100")


class SettingsError(ValueError):
    """A user-facing configuration or usage error (exit code 2)."""


def _suggest(word: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def expand_codes(codes: tuple[str, ...] | list[str], where: str = "") -> set[str]:
    """Codes and prefixes (``ZG00``, ``ALL``) to full codes; unknown ones are errors."""
    chosen: set[str] = set()
    for raw in codes:
        code = raw.strip().upper()
        if not code:
            continue
        if code == "ALL":
            chosen.update(ALL_CODES)
            continue
        matches = [c for c in ALL_CODES if c.startswith(code)]
        if not matches or not code.startswith("ZG"):
            hint = _suggest(code, list(ALL_CODES)) or f"; known codes: {', '.join(ALL_CODES)}"
            raise SettingsError(f"unknown rule code {raw!r}{where}{hint}")
        chosen.update(matches)
    return chosen


@dataclass(frozen=True)
class Options:
    """One layer of choices; ``None`` means "this layer does not say"."""

    select: tuple[str, ...] | None = None
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    per_file_ignores: tuple[tuple[str, tuple[str, ...]], ...] = ()
    exclude: tuple[str, ...] | None = None
    extend_exclude: tuple[str, ...] = ()
    force_exclude: bool | None = None
    respect_gitignore: bool | None = None
    optimizer_factories: tuple[str, ...] = ()
    zeroing_engines: tuple[str, ...] = ()
    source: str = ""  # where the layer came from, for error messages


@dataclass(frozen=True)
class Settings:
    """Everything that changes how one file is checked. Picklable and hashable."""

    select: tuple[str, ...] = ALL_CODES
    ignore: tuple[str, ...] = ()
    per_file_ignores: tuple[tuple[str, frozenset[str]], ...] = ()
    exclude: tuple[str, ...] = ()
    force_exclude: bool = False
    respect_gitignore: bool = True
    optimizer_factories: frozenset[str] = frozenset()
    zeroing_engines: frozenset[str] = frozenset()
    root: str = ""  # the folder that exclude and per-file-ignores patterns are relative to

    @classmethod
    def from_options(cls, select: tuple[str, ...] = (), ignore: tuple[str, ...] = ()) -> "Settings":
        """Settings from CLI-style code lists alone (no configuration file)."""
        return build_settings(Options(select=select or None, ignore=ignore))

    def enabled(self, code: str) -> bool:
        return code in self.select

    def ignored_in(self, path: str) -> frozenset[str]:
        """Codes that per-file-ignores switches off for ``path``."""
        rel = self._relative(path)
        codes: set[str] = set()
        for pattern, ignored in self.per_file_ignores:
            if _spec((pattern,)).match_file(rel):
                codes |= ignored
        return frozenset(codes)

    def is_excluded(self, path: str, is_dir: bool = False) -> bool:
        """Does an exclude pattern match ``path`` (relative to the configuration's folder)?"""
        if not self.exclude:
            return False
        return _spec(self.exclude).match_file(self._relative(path) + ("/" if is_dir else ""))

    def _relative(self, path: str) -> str:
        full = os.path.abspath(path)
        root = self.root or os.getcwd()
        rel = os.path.relpath(full, root) if full.startswith(root.rstrip(os.sep) + os.sep) else full
        return rel.replace(os.sep, "/")


@functools.lru_cache(maxsize=256)
def _spec(patterns: tuple[str, ...]):
    # gitignore semantics, as ruff's globs: `tests/` anchors, `*.py` matches at any depth.
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines(patterns)


def _selected(layers: tuple[Options, ...]) -> tuple[str, ...]:
    """Later layers win: a layer's ``select`` restarts the choice, as in ruff."""
    chosen = set(ALL_CODES)
    for layer in layers:
        where = f" in {layer.source}" if layer.source else ""
        if layer.select is not None:
            chosen = expand_codes(layer.select, where)
        chosen |= expand_codes(layer.extend_select, where)
        chosen -= expand_codes(layer.ignore, where)
    return tuple(c for c in ALL_CODES if c in chosen)


def _last(layers: tuple[Options, ...], name: str, default):
    values = [getattr(layer, name) for layer in layers if getattr(layer, name) is not None]
    return values[-1] if values else default


def build_settings(*layers: Options, root: str = "") -> Settings:
    """Fold option layers (configuration file first, command line last) into Settings."""
    select = _selected(layers)
    per_file = tuple(
        (pattern, frozenset(expand_codes(codes, f" in per-file-ignores of {layer.source or 'the options'}")))
        for layer in layers
        for pattern, codes in layer.per_file_ignores
    )
    exclude = tuple(_last(layers, "exclude", ())) + tuple(p for layer in layers for p in layer.extend_exclude)
    return Settings(
        select=select,
        ignore=tuple(c for c in ALL_CODES if c not in select),
        per_file_ignores=per_file,
        exclude=exclude,
        force_exclude=_last(layers, "force_exclude", False),
        respect_gitignore=_last(layers, "respect_gitignore", True),
        optimizer_factories=frozenset(n for layer in layers for n in layer.optimizer_factories),
        zeroing_engines=frozenset(n for layer in layers for n in layer.zeroing_engines),
        root=root,
    )
