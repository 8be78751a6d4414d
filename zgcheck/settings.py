"""Run settings: which rules are selected. (Configuration files build on this.)"""
from __future__ import annotations

from dataclasses import dataclass

ALL_CODES = ("ZG001", "ZG002", "ZG003", "ZG004", "ZG005", "ZG006")


class SettingsError(ValueError):
    """A user-facing configuration or usage error (exit code 2)."""


def _expand(codes: tuple[str, ...]) -> set[str]:
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
            raise SettingsError(f"unknown rule code {raw!r}; known codes: {', '.join(ALL_CODES)}")
        chosen.update(matches)
    return chosen


@dataclass(frozen=True)
class Settings:
    select: tuple[str, ...] = ALL_CODES
    ignore: tuple[str, ...] = ()

    @classmethod
    def from_options(cls, select: tuple[str, ...] = (), ignore: tuple[str, ...] = ()) -> "Settings":
        chosen = _expand(select) if select else set(ALL_CODES)
        chosen -= _expand(ignore)
        return cls(select=tuple(c for c in ALL_CODES if c in chosen), ignore=tuple(sorted(_expand(ignore))))

    def enabled(self, code: str) -> bool:
        return code in self.select
