"""Per-file result cache: an unchanged candidate file is never parsed twice.

One JSON index per cache key (zgcheck version + code fingerprint + effective settings)
maps the blake2b hash of a file's bytes to its diagnostics. JSON, not pickle, because a
cache folder can be written by anyone: loading it must never run code. Anything that does
not look exactly like an index we wrote (truncated, corrupted, foreign, other key) is
ignored and rebuilt. Writes go to a temporary file and are renamed into place, so a
reader sees the old index or the new one, never half of one.
"""
from __future__ import annotations

import hashlib
import json
import os

from zgcheck.diagnostics import Diagnostic, Edit, Fix, Location, RelatedEvent

FORMAT = "zgcheck-cache-1"
DEFAULT_DIR = ".zgcheck_cache"
# Bounds the index so a long-lived cache folder cannot grow without limit.
MAX_ENTRIES = 200_000


def content_hash(data: bytes) -> str:
    """The cache's name for a file's bytes."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _code_fingerprint() -> str:
    """Sizes and mtimes of zgcheck's own modules: an edited rule invalidates the cache
    even when the version number did not change (editable installs, development)."""
    root = os.path.dirname(os.path.abspath(__file__))
    parts = []
    for folder, _dirs, files in sorted(os.walk(root)):
        for name in sorted(files):
            if name.endswith(".py"):
                stat = os.stat(os.path.join(folder, name))
                parts.append(f"{os.path.relpath(os.path.join(folder, name), root)}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.blake2b("\n".join(parts).encode(), digest_size=8).hexdigest()


def _canonical(value: object) -> object:
    """A stable JSON-able form: sets sorted (their repr follows string hashing, which
    changes from one process to the next), dataclasses by field."""
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (set, frozenset)):
        return sorted((_canonical(v) for v in value), key=repr)
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return sorted(([_canonical(k), _canonical(v)] for k, v in value.items()), key=repr)
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def cache_key(settings: object) -> str:
    """Everything besides the file's bytes that decides its result."""
    from zgcheck import __version__

    raw = f"{__version__}\n{_code_fingerprint()}\n{json.dumps(_canonical(settings), sort_keys=True)}"
    return hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()


class Cache:
    """Results of files that parsed, by content hash, for one cache key."""

    def __init__(self, directory: str, settings: object) -> None:
        self.directory = directory
        self.key = cache_key(settings)
        self.path = os.path.join(directory, f"{self.key}.json")
        self.entries: dict[str, list] = _load(self.path, self.key)
        self.dirty = False
        self._digests: dict[str, str] = {}  # helper file -> content hash, read once per run

    def get(self, digest: str, filename: str) -> tuple[Diagnostic, ...] | None:
        """Cached diagnostics for these bytes (renamed to ``filename``), or None. An entry
        that read helpers of other modules holds only while those files are unchanged."""
        raw = self.entries.get(digest)
        if raw is None:
            return None
        if isinstance(raw, dict):
            deps = raw.get("deps")
            if raw.get("file") != filename or not isinstance(deps, list) or not self._current(deps):
                return None
            raw = raw.get("diagnostics")
        try:
            return tuple(_diagnostic(item, filename) for item in raw)
        except (TypeError, ValueError, KeyError, AttributeError):
            # Valid JSON, wrong shape: distrust the entry and check the file again.
            del self.entries[digest]
            return None

    def _current(self, deps: list) -> bool:
        """Do the helper files an entry relied on still have the same bytes? Each file is
        read and hashed once per run, however many entries rely on it."""
        from zgcheck.project import LISTING, project
        from zgcheck.sources import read_bytes

        for dep in deps:
            if not (isinstance(dep, list) and len(dep) == 2 and all(isinstance(part, str) for part in dep)):
                return False
            path, digest = dep
            now = self._digests.get(path)
            if now is None and path.startswith(LISTING):
                now = self._digests[path] = project().listing_digest(path[len(LISTING):])
            elif now is None:
                data = read_bytes(path)
                now = self._digests[path] = content_hash(data) if isinstance(data, bytes) else ""
            if now != digest:
                return False
        return True

    def put(self, digest: str, diagnostics: tuple[Diagnostic, ...], filename: str = "",
            dependencies: tuple[tuple[str, str], ...] = ()) -> None:
        """Remember a parsed file's diagnostics (and the helper files they depend on)."""
        encoded = [_encode(d) for d in diagnostics]
        if dependencies:
            self.entries[digest] = {"file": filename, "deps": [list(d) for d in dependencies], "diagnostics": encoded}
        else:
            self.entries[digest] = encoded
        self.dirty = True

    def save(self) -> None:
        """Write the index atomically; a cache that cannot be written is only slower."""
        if not self.dirty:
            return
        try:
            _prepare_dir(self.directory)
            entries = dict(list(self.entries.items())[-MAX_ENTRIES:])
            payload = json.dumps({"format": FORMAT, "key": self.key, "entries": entries}, separators=(",", ":"))
            import tempfile  # only when writing: a warm run never pays for it

            handle, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as out:
                    out.write(payload)
                os.replace(tmp, self.path)
            except BaseException:
                os.unlink(tmp)  # a full disk must not leave half an index behind
                raise
        except OSError:
            return
        self.dirty = False


def _prepare_dir(directory: str) -> None:
    """Create the folder with a `.gitignore` of `*`, so the cache is never committed."""
    os.makedirs(directory, exist_ok=True)
    ignore = os.path.join(directory, ".gitignore")
    if not os.path.exists(ignore):
        with open(ignore, "w", encoding="utf-8") as out:
            out.write("# Created by zgcheck; the whole folder is a cache.\n*\n")


def _load(path: str, key: str) -> dict[str, list]:
    """The index at ``path`` if it is one of ours for ``key``; otherwise empty."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("key") != key:
        return {}
    entries = data.get("entries")
    if not isinstance(entries, dict):
        return {}
    return {k: v for k, v in entries.items() if isinstance(k, str) and isinstance(v, (list, dict))}


def _encode(diag: Diagnostic) -> dict:
    """A diagnostic as plain JSON values (the filename is restored on load)."""
    fix = diag.fix
    return {
        "code": diag.code, "message": diag.message,
        "loc": [diag.location.row, diag.location.column],
        "end": [diag.end_location.row, diag.end_location.column],
        "optimizer": diag.optimizer, "cell": diag.cell,
        "related": [[e.label, e.line] for e in diag.related],
        "fix": None if fix is None else {
            "applicability": fix.applicability, "message": fix.message,
            "edits": [[e.content, [e.location.row, e.location.column], [e.end_location.row, e.end_location.column]] for e in fix.edits],
        },
    }


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _loc(value: object) -> Location:
    row, column = value  # type: ignore[misc]
    if not (type(row) is int and type(column) is int):
        raise TypeError("expected two integers")
    return Location(row, column)


def _diagnostic(item: dict, filename: str) -> Diagnostic:
    """Rebuild a diagnostic, checking every field's type: the file may be foreign."""
    fix = item["fix"]
    if fix is not None:
        edits = tuple(Edit(_str(c), _loc(a), _loc(b)) for c, a, b in fix["edits"])
        fix = Fix(_str(fix["applicability"]), _str(fix["message"]), edits)
    related = tuple(RelatedEvent(_str(label), _loc([line, 0]).row) for label, line in item["related"])
    cell = item["cell"]
    if cell is not None and type(cell) is not int:
        raise TypeError("cell must be an integer")
    return Diagnostic(_str(item["code"]), _str(item["message"]), filename, _loc(item["loc"]), _loc(item["end"]),
                      _str(item["optimizer"]), related, fix, cell)
