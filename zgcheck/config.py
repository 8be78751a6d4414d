"""``[tool.zgcheck]`` in pyproject.toml: finding the nearest one, reading and checking it.

As in ruff, each file is checked with the nearest ``pyproject.toml`` above it that has a
``[tool.zgcheck]`` table; ``--config PATH`` uses one file for everything and
``--isolated`` uses none. Look-ups are cached per directory so that a run over thousands
of files reads each configuration once.
"""
from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass, field, fields, replace

from zgcheck.settings import Options, Settings, SettingsError, _suggest, build_settings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

LISTS = ("select", "extend-select", "ignore", "exclude", "extend-exclude", "optimizer-factories", "zeroing-engines")
BOOLS = ("force-exclude", "respect-gitignore")
KEYS = LISTS + BOOLS + ("per-file-ignores",)


def _list(table: dict, key: str, where: str) -> tuple[str, ...] | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SettingsError(f"{where}: `{key}` must be a list of strings")
    return tuple(value)


def _per_file(table: dict, where: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    value = table.get("per-file-ignores", {})
    if not isinstance(value, dict):
        raise SettingsError(f"{where}: `per-file-ignores` must be a table of glob = [codes]")
    pairs = []
    for pattern, codes in value.items():
        if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
            raise SettingsError(f"{where}: per-file-ignores for {pattern!r} must be a list of codes")
        pairs.append((pattern, tuple(codes)))
    return tuple(pairs)


def options_from_table(table: dict, where: str) -> Options:
    """Check a ``[tool.zgcheck]`` table's keys and types and turn it into Options."""
    for key in table:
        if key not in KEYS:
            raise SettingsError(f"{where}: unknown key `{key}` in [tool.zgcheck]{_suggest(key, KEYS)}")
    for key in BOOLS:
        if key in table and not isinstance(table[key], bool):
            raise SettingsError(f"{where}: `{key}` must be true or false")
    lists = {key.replace("-", "_"): _list(table, key, where) for key in LISTS}
    for key in ("extend_select", "ignore", "extend_exclude", "optimizer_factories", "zeroing_engines"):
        lists[key] = lists[key] or ()
    return Options(
        **lists,
        per_file_ignores=_per_file(table, where),
        force_exclude=table.get("force-exclude"),
        respect_gitignore=table.get("respect-gitignore"),
        source=where,
    )


@functools.lru_cache(maxsize=None)
def read_config(path: str) -> Options | None:
    """Options of one pyproject.toml, or None when it has no ``[tool.zgcheck]``."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise SettingsError(f"cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: invalid TOML: {exc}") from None
    table = data.get("tool", {}).get("zgcheck")
    if table is None:
        return None
    if not isinstance(table, dict):
        raise SettingsError(f"{path}: [tool.zgcheck] must be a table")
    return options_from_table(table, path)


@functools.lru_cache(maxsize=None)
def nearest_config(directory: str) -> str | None:
    """The nearest pyproject.toml at or above ``directory`` with a ``[tool.zgcheck]`` table."""
    candidate = os.path.join(directory, "pyproject.toml")
    if os.path.isfile(candidate) and read_config(candidate) is not None:
        return candidate
    parent = os.path.dirname(directory)
    return None if parent == directory else nearest_config(parent)


@dataclass(frozen=True)
class Resolver:
    """Settings for any path: the nearest configuration, overridden by the command line."""

    cli: Options = field(default_factory=Options)
    config: str | None = None  # --config PATH
    isolated: bool = False

    def __post_init__(self) -> None:
        if self.config is not None and read_config(os.path.abspath(self.config)) is None:
            # An explicit file without the table is almost surely a mistake; say so early.
            raise SettingsError(f"{self.config}: no [tool.zgcheck] table")

    def for_path(self, path: str) -> Settings:
        """Settings for a file (or folder) at ``path``."""
        return _settings_for_dir(self, os.path.dirname(os.path.abspath(path)))

    def excludes(self, path: str, is_dir: bool, explicit: bool) -> bool:
        """Should discovery skip ``path``? A file named explicitly only with force-exclude."""
        settings = self.for_path(path)
        if explicit and not settings.force_exclude:
            return False
        return settings.is_excluded(path, is_dir)


@functools.lru_cache(maxsize=4096)
def _settings_for_dir(resolver: Resolver, directory: str) -> Settings:
    if resolver.isolated:
        return build_settings(resolver.cli)
    path = os.path.abspath(resolver.config) if resolver.config else nearest_config(directory)
    if path is None:
        return build_settings(resolver.cli)
    return build_settings(read_config(path), resolver.cli, root=os.path.dirname(path))


def clear_caches() -> None:
    """Forget every configuration read so far (a new run may see edited files)."""
    for cached in (read_config, nearest_config, _settings_for_dir):
        cached.cache_clear()


def cli_options(**values) -> Options:
    """Options from CLI flags; empty tuples and None mean the flag was not given."""
    known = {f.name for f in fields(Options)}
    chosen = {k: v for k, v in values.items() if k in known and v not in (None, ())}
    if "select" in chosen:
        chosen["select"] = tuple(chosen["select"])
    return replace(Options(source="the command line"), **chosen)
