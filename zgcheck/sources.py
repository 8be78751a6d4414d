"""Bytes to text: encoding cookie, BOM and newline style are detected, never guessed.

A file that cannot be read or decoded becomes a :class:`FileProblem` value.
"""
from __future__ import annotations

import errno
import io
import os
import re
import stat
import tokenize
from dataclasses import dataclass

from zgcheck.diagnostics import FileProblem

# Files above this size are generated or data files, never hand-written training code.
# LibCST analyses about 10,000 syntax nodes a second, so a 20 MB file of code would take
# half an hour; 4 MB is the cheap gate before reading (the node budget in parsing.py is
# the real bound). The largest of ~10,000 real files surveyed is a 3.8 MB data module.
MAX_BYTES = 4 * 1024 * 1024
COOKIE = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)", re.M)


@dataclass(frozen=True)
class Source:
    """Decoded text of one file plus what is needed to write it back unchanged."""

    filename: str
    text: str
    encoding: str
    bom: bool


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def source_lines(text: str, keepends: bool = False) -> list[str]:
    """Lines as Python's tokenizer counts them: only \\n, \\r\\n and \\r end a line.
    (str.splitlines also breaks on form feeds and other separators, which would shift
    every line number after them.)"""
    if not text:
        return []
    lines, start = [], 0
    for match in _LINE_BREAK.finditer(text):
        lines.append(text[start : match.end() if keepends else match.start()])
        start = match.end()
    if start < len(text):
        lines.append(text[start:])
    return lines


# Outside strings and comments, the same words as might_hold_training_code: one left-to-right
# scan in which a string literal or a comment is one match, so the words inside them are
# never seen. Each literal's pattern is an unrolled loop (no backtracking per character);
# an unterminated literal does not match and its quote is passed over, so the code after
# it stays in view. String prefixes need no care: the quote starts the match.
# A loss scaler object called with the loss and the optimizer (`loss_scaler(loss, opt)`,
# timm's NativeScaler) runs backward and step: names that end so (the lexical scan, the
# prefilter and the extraction read them alike).
LOSS_SCALER = "loss_scaler"
_CODE_WORDS = re.compile(
    r'"""[^"\\]*(?:(?:\\.|"(?!""))[^"\\]*)*"""'
    r"|'''[^'\\]*(?:(?:\\.|'(?!''))[^'\\]*)*'''"
    r'|"[^"\\\n]*(?:\\.[^"\\\n]*)*"'
    r"|'[^'\\\n]*(?:\\.[^'\\\n]*)*'"
    r"|#[^\r\n]*"
    rf"|(\.grad|zero_grad|backward|step|{LOSS_SCALER})",
    re.S,
)


def code_might_hold_training_code(text: str) -> bool:
    """:func:`might_hold_training_code` on the code alone: words in string literals and
    comments do not count, so library modules that only name `"backward"` in a table or
    document `step` are never parsed. About 6x cheaper than CPython's parser, which it
    spares for most library files. Python source only (a notebook's bytes are JSON).

    Of `backward` and `step`, one must be an event's shape (:func:`_event_shaped`:
    `loss.backward()`, `run_backward(loss)`, `fn = optimizer.step`); the other may be any
    name in code (`for step, batch in ...` next to a helper of another module that steps).
    Keyword arguments and `def` names alone (`step=2`, `def softmax_backward(...)`,
    `aten.softmax_backward.default`) do not make a file worth parsing. Neither do
    `torch.autograd.grad` and `torch.nn.grad`, functions of modules named `grad`."""
    seen: set[str] = set()
    shaped: set[str] = set()
    for match in _CODE_WORDS.finditer(text):
        word = match.group(1)
        if word is None:
            continue
        if word == "zero_grad" or (word == ".grad" and not _module_grad(text, match.start())):
            return True
        if word == ".grad":
            continue
        if word == LOSS_SCALER:
            # `loss_scaler(loss, optimizer)`: a loss scaler object runs backward and step.
            if _CALL_AFTER.match(text, match.end()):
                return True
            continue
        seen.add(word)
        if word not in shaped and _event_shaped(text, match.start(), match.end()):
            shaped.add(word)
        if shaped and len(seen) == 2:
            return True
    return False


_NAME_REST = re.compile(r"\w*")
_CALL_AFTER = re.compile(r"[ \t]*\(")
_DEFINED = re.compile(r"(?:^|[^\w.])(?:def|class)[ \t]+$")
_SPACE_BEFORE_NAME = " \t\f\\\r\n"
_EVENT_ATTRIBUTES = frozenset({"backward", "manual_backward", "step", "optimizer_step"})


def _space_before(text: str, at: int) -> int:
    """Where the blanks (and line continuations) that end at ``at`` begin."""
    while at and text[at - 1] in _SPACE_BEFORE_NAME:
        at -= 1
    return at


def _name_start(text: str, at: int) -> int:
    """Where the identifier that ends at ``at`` begins."""
    while at and (text[at - 1].isalnum() or text[at - 1] == "_"):
        at -= 1
    return at


def _module_grad(text: str, dot: int) -> bool:
    """`torch.autograd.grad(...)`, `torch.nn.grad.conv2d_input`: functions of a module
    named `grad`, not a tensor's gradient."""
    end = _space_before(text, dot)
    return text[_name_start(text, end):end] in ("autograd", "nn")


def _event_shaped(text: str, start: int, end: int) -> bool:
    """Is the name around ``text[start:end]`` called (and not being defined), or exactly
    `backward` / `step` (`manual_backward`, `optimizer_step`) read as an attribute?"""
    first = _name_start(text, start)
    last = _NAME_REST.match(text, end).end()
    if _CALL_AFTER.match(text, last):
        return _DEFINED.search(text, max(0, first - 40), first) is None
    if text[first:last] not in _EVENT_ATTRIBUTES:
        return False
    before = _space_before(text, first)
    return before > 0 and text[before - 1] == "."


def line_starts(text: str) -> list[int]:
    """Offset at which each line starts (index 0 = line 1), line breaks as in source_lines."""
    return [0] + [match.end() for match in _LINE_BREAK.finditer(text)]


def might_hold_training_code(data: bytes) -> bool:
    """Cheap prefilter on raw bytes: no backward/step, no `.grad` and no `zero_grad` ->
    nothing to find. (A reset alone can meet a backward and a step inside a helper of
    another module, such as a loss scaler's `__call__`.)"""
    if b".grad" in data or b"zero_grad" in data:
        return True
    return b"backward" in data and b"step" in data


def read_bytes(path: str) -> bytes | FileProblem:
    """Read a file's bytes, turning OS errors into a one-line problem."""
    try:
        # stat first: a FIFO named .py would block open() forever, and a huge file need not be read
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            return FileProblem(path, "io", "is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            return FileProblem(path, "io", "not a regular file (a FIFO, socket or device); skipped")
        if info.st_size > MAX_BYTES:
            return _too_large(path)
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        return FileProblem(path, "io", _os_error_message(exc))
    # the file may have grown between stat and read
    return _too_large(path) if len(data) > MAX_BYTES else data


def _too_large(path: str) -> FileProblem:
    return FileProblem(path, "limit", f"file is larger than {MAX_BYTES // (1024 * 1024)} MB; skipped (generated or data file?)")


def _os_error_message(exc: OSError) -> str:
    """One line per OS failure; the subclasses first because their errno may be unset."""
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not a file"
    if isinstance(exc, FileNotFoundError):
        return "file not found (deleted or a broken symlink)"
    if isinstance(exc, PermissionError):
        return "cannot read file: permission denied"
    if exc.errno == errno.ELOOP:
        return "symlink loop (too many levels of symbolic links); skipped"
    return f"cannot read file: {exc.strerror or exc}"


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
        return FileProblem(path, "decode", _decode_message(data, encoding, exc))
    return Source(path, text, encoding, bom)


def _decode_message(data: bytes, encoding: str, exc: Exception) -> str:
    """Say where decoding failed, as a line an editor can jump to."""
    if not isinstance(exc, UnicodeDecodeError):
        return f"cannot decode as {encoding}: {exc}"
    line = data.count(b"\n", 0, exc.start) + 1
    hint = "" if COOKIE.search(b"\n".join(data.splitlines()[:2])) else " (no coding declaration; binary file or another encoding?)"
    return f"cannot decode as {encoding} at line {line}, byte {exc.start}: {exc.reason}{hint}"
