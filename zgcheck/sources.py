"""Bytes to text: encoding cookie, BOM and newline style are detected, never guessed.

A file that cannot be read or decoded becomes a :class:`FileProblem` value.
"""
from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass

from zgcheck.diagnostics import FileProblem

# Files above this size are almost never hand-written training code; parsing them
# would stall a pre-commit run, so they are reported and skipped.
MAX_BYTES = 20 * 1024 * 1024
COOKIE = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)", re.M)


@dataclass(frozen=True)
class Source:
    """Decoded text of one file plus what is needed to write it back unchanged."""

    filename: str
    text: str
    encoding: str
    bom: bool


def might_hold_training_code(data: bytes) -> bool:
    """Cheap prefilter on raw bytes: no backward/step and no `.grad` -> nothing to find."""
    if b".grad" in data:
        return True
    return b"backward" in data and b"step" in data


def read_bytes(path: str) -> bytes | FileProblem:
    """Read a file's bytes, turning OS errors into a one-line problem."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except IsADirectoryError:
        return FileProblem(path, "io", "is a directory, not a file")
    except FileNotFoundError:
        return FileProblem(path, "io", "file not found (deleted or a broken symlink)")
    except PermissionError:
        return FileProblem(path, "io", "cannot read file: permission denied")
    except OSError as exc:
        return FileProblem(path, "io", f"cannot read file: {exc.strerror or exc}")
    if len(data) > MAX_BYTES:
        return FileProblem(path, "io", f"file is larger than {MAX_BYTES // (1024 * 1024)} MB; skipped")
    return data


def decode(path: str, data: bytes) -> Source | FileProblem:
    """Decode as Python does: BOM, then a coding cookie, then UTF-8."""
    if b"\x00" in data:
        return FileProblem(path, "decode", "file contains null bytes; not Python source")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:
        head = b"\n".join(data.splitlines()[:2])
        if COOKIE.search(head):
            return FileProblem(path, "decode", f"bad coding declaration: {getattr(exc, 'msg', exc)}")
        encoding = "utf-8"  # no cookie: the bytes themselves are not UTF-8, said below
    bom = data.startswith(b"\xef\xbb\xbf")
    try:
        text = data.decode("utf-8-sig" if bom else encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        reason = exc.reason if isinstance(exc, UnicodeDecodeError) else str(exc)
        where = f" at byte {exc.start}" if isinstance(exc, UnicodeDecodeError) else ""
        return FileProblem(path, "decode", f"cannot decode as {encoding}{where}: {reason}")
    return Source(path, text, encoding, bom)
