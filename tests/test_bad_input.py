"""Bad input: each case gets one clear line, the run goes on, exit codes hold, no file changes.

Every case puts one bad file next to a good buggy file in the same run and checks that
(a) the bad file gets exactly its one-line message, (b) the good file is still reported,
(c) the exit code is the documented one, and (d) no byte or timestamp in the tree moved.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Callable

import pytest
from click.testing import CliRunner

from zgcheck import parsing, sources
from zgcheck.cli import main
from zgcheck.runner import check_file, check_source
from zgcheck.settings import Settings
from samples import BUG

GOOD_FINDING = "good.py:7:5: ZG002"
EVENTS = b"\nloss.backward()\noptimizer.step()\n"  # passes the byte prefilter, so the file is really read


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under root with its type, size, mtime and (for regular files) bytes."""
    state = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            body = Path(path).read_bytes() if stat.S_ISREG(info.st_mode) else os.readlink(path) if stat.S_ISLNK(info.st_mode) else None
            state[path] = (stat.S_IFMT(info.st_mode), info.st_size, info.st_mtime_ns, body)
    return state


def run_cli(*paths: Path) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, ["check", "--no-color", "-o", "concise", *map(str, paths)], catch_exceptions=False)
    return result.exit_code, result.output.splitlines()


def write(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(root: Path) -> Path:
        path = root / name
        path.write_bytes(data)
        return path
    return make


def symlink(name: str, target: str) -> Callable[[Path], Path]:
    def make(root: Path) -> Path:
        os.symlink(root / target, root / name)
        return root / name
    return make


def symlink_loop(root: Path) -> Path:
    os.symlink(root / "loop_b.py", root / "loop_a.py")
    os.symlink(root / "loop_a.py", root / "loop_b.py")
    return root / "loop_a.py"


def fifo(root: Path) -> Path:
    os.mkfifo(root / "pipe.py")
    return root / "pipe.py"


def nested_ifs(depth: int) -> bytes:
    lines = ["import torch", "optimizer = torch.optim.SGD([], lr=1)", "for i in range(3):"]
    lines += ["    " * (d + 1) + "if i:" for d in range(depth)]
    lines += ["    " * (depth + 1) + "loss.backward()", "    " * (depth + 1) + "optimizer.step()"]
    return ("\n".join(lines) + "\n").encode()


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + bytes(range(256)) + EVENTS
NO_NULL_BINARY = bytes(range(1, 256)) * 4 + EVENTS
BAD_CASES = [
    pytest.param(write("bad.py", b"def broken(:\n" + EVENTS), "bad.py:1:12: error: syntax error: invalid syntax", id="syntax-error"),
    pytest.param(write("bad.py", b'print "hello"' + EVENTS), "bad.py:1:1: error: syntax error: Missing parentheses in call to 'print'. Did you mean print(...)? (Python 2 code is not supported)", id="python2-print"),
    pytest.param(write("bad.py", b"x = 1\x00" + EVENTS), "bad.py: error: file contains null bytes; not Python source", id="null-bytes"),
    pytest.param(write("bad.py", b"x = 1\n# caf\xe9" + EVENTS), "bad.py: error: cannot decode as utf-8 at line 2, byte 11: invalid continuation byte (no coding declaration; binary file or another encoding?)", id="latin1-without-cookie"),
    pytest.param(write("bad.py", b"# -*- coding: klingon -*-" + EVENTS), "bad.py: error: bad coding declaration: unknown encoding: klingon", id="wrong-coding-cookie"),
    pytest.param(write("bad.py", b"# coding: ascii\n# caf\xc3\xa9" + EVENTS), "bad.py: error: cannot decode as ascii at line 2, byte 21: ordinal not in range(128)", id="cookie-disagrees-with-bytes"),
    pytest.param(write("bad.py", PNG), "bad.py: error: file contains null bytes; not Python source", id="binary-png"),
    pytest.param(write("bad.py", NO_NULL_BINARY), "bad.py: error: cannot decode as utf-8 at line 2, byte 127: invalid start byte (no coding declaration; binary file or another encoding?)", id="binary-without-nulls"),
    pytest.param(write("bad.py", nested_ifs(1000)), "bad.py:103:1: error: syntax error: too many levels of indentation", id="1000-nested-ifs"),
    pytest.param(write("bad.py", b"x = " + b" + ".join([b"a"] * 5000) + EVENTS), "bad.py: error: code is nested too deeply to analyse (more than 1,000 levels); skipped", id="5000-term-chain"),
    pytest.param(write("bad.py", b"x = [" + b"1, " * 350_000 + b"]" + EVENTS), "bad.py: error: file is too large to analyse (more than 150,000 syntax nodes); skipped", id="1MB-line-of-code"),
    pytest.param(symlink("bad.py", "missing.py"), "bad.py: error: file not found (deleted or a broken symlink)", id="broken-symlink"),
    pytest.param(symlink_loop, "loop_a.py: error: symlink loop (too many levels of symbolic links); skipped", id="symlink-loop"),
    pytest.param(fifo, "pipe.py: error: not a regular file (a FIFO, socket or device); skipped", id="fifo"),
]


@pytest.mark.parametrize(("make", "message"), BAD_CASES)
def test_bad_file_gets_one_line_and_the_run_goes_on(tmp_path, make, message):
    (tmp_path / "good.py").write_text(BUG)
    bad = make(tmp_path)
    before = snapshot(tmp_path)
    code, lines = run_cli(tmp_path / "good.py", bad)
    assert code == 1
    assert [line for line in lines if line.endswith(message)] != [], lines
    assert sum(bad.name in line for line in lines) == 1, lines  # one line, no traceback
    assert any(GOOD_FINDING in line for line in lines), lines
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(("make", "message"), BAD_CASES)
def test_bad_file_alone_exits_1_with_a_single_problem(tmp_path, make, message):
    bad = make(tmp_path)
    before = snapshot(tmp_path)
    result = check_file(str(bad), Settings())
    assert len(result.problems) == 1 and not result.diagnostics
    assert "\n" not in result.problems[0].message and result.problems[0].kind != "internal"
    assert run_cli(bad)[0] == 1
    assert snapshot(tmp_path) == before


def test_50mb_file_is_skipped_without_being_read(tmp_path, monkeypatch):
    """The size comes from stat, so the 50 MB are never read or decoded."""
    big = tmp_path / "big.py"
    with open(big, "wb") as handle:
        handle.write(b"loss.backward()\noptimizer.step()\n" * (50 * 1024 * 1024 // 33 + 1))
    (tmp_path / "good.py").write_text(BUG)
    before = snapshot(tmp_path)
    monkeypatch.setattr(sources, "decode", lambda *a: pytest.fail("a file over the limit was decoded"))
    code, lines = run_cli(tmp_path)
    assert code == 1
    assert any(line.endswith("big.py: error: file is larger than 4 MB; skipped (generated or data file?)") for line in lines)
    assert any(GOOD_FINDING in line for line in lines)
    assert snapshot(tmp_path) == before


def test_unreadable_file(tmp_path, monkeypatch):
    """We run as root, so permission denied is simulated at open()."""
    (tmp_path / "good.py").write_text(BUG)
    secret = tmp_path / "secret.py"
    secret.write_text(BUG)
    real_open = open

    def deny(path, *args, **kwargs):
        if str(path) == str(secret):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    before = snapshot(tmp_path)
    monkeypatch.setattr("builtins.open", deny)
    code, lines = run_cli(tmp_path)
    assert code == 1
    assert any(line.endswith("secret.py: error: cannot read file: permission denied") for line in lines)
    assert any(GOOD_FINDING in line for line in lines)
    monkeypatch.undo()
    assert snapshot(tmp_path) == before


def test_file_deleted_between_discovery_and_reading(tmp_path, monkeypatch):
    import zgcheck.discovery as discovery

    (tmp_path / "good.py").write_text(BUG)
    (tmp_path / "gone.py").write_text(BUG)
    real = discovery.discover

    def discover_then_delete(paths, *args, **kwargs):
        found = real(paths, *args, **kwargs)
        os.unlink(tmp_path / "gone.py")
        return found

    monkeypatch.setattr(discovery, "discover", discover_then_delete)
    code, lines = run_cli(tmp_path)
    assert code == 1
    assert any(line.endswith("gone.py: error: file not found (deleted or a broken symlink)") for line in lines)
    assert any(GOOD_FINDING in line for line in lines)


def test_file_replaced_by_a_directory(tmp_path):
    (tmp_path / "dir.py").mkdir()
    result = check_file(str(tmp_path / "dir.py"), Settings())
    assert [p.message for p in result.problems] == ["is a directory, not a file"]


def test_directory_named_py_is_walked_not_read(tmp_path):
    (tmp_path / "pkg.py").mkdir()
    (tmp_path / "pkg.py" / "good.py").write_text(BUG)
    code, lines = run_cli(tmp_path / "pkg.py")
    assert code == 1 and any(GOOD_FINDING in line for line in lines) and not any("error:" in line for line in lines)


def test_paths_with_spaces_and_non_ascii_names(tmp_path):
    folder = tmp_path / "my runs" / "expériences ü"
    folder.mkdir(parents=True)
    (folder / "tràin 1 模型.py").write_text(BUG)
    before = snapshot(tmp_path)
    code, lines = run_cli(tmp_path / "my runs")
    assert code == 1
    assert any("expériences ü/tràin 1 模型.py:7:5: ZG002" in line for line in lines), lines
    assert snapshot(tmp_path) == before


def findings(result) -> list[tuple[str, int, int]]:
    return [(d.code, d.location.row, d.location.column) for d in result.diagnostics]


@pytest.mark.parametrize(
    ("data", "column"),
    [
        pytest.param(BUG.encode(), 5, id="lf"),
        pytest.param(BUG.replace("\n", "\r\n").encode(), 5, id="crlf"),
        pytest.param("".join(l + ("\r\n" if i % 2 else "\n") for i, l in enumerate(BUG.splitlines())).encode(), 5, id="mixed-newlines"),
        pytest.param(BUG.replace("\n", "\r").encode(), 5, id="old-mac-cr"),
        pytest.param(b"\xef\xbb\xbf" + BUG.encode(), 5, id="utf8-bom"),
        pytest.param(BUG.replace("    ", "\t").encode(), 2, id="tabs"),
        pytest.param(b"# -*- coding: latin-1 -*-\n" + BUG.replace("import torch", "import torch  # caf\xe9").encode("latin-1"), 5, id="latin1-with-cookie"),
    ],
)
def test_newlines_bom_tabs_and_cookies_still_analyse(tmp_path, data, column):
    """Same bug, other bytes: the same finding on the same line (shifted only by a cookie line)."""
    path = tmp_path / "train.py"
    path.write_bytes(data)
    row = 8 if data.startswith(b"# -*- coding") else 7
    assert findings(check_file(str(path), Settings())) == [("ZG002", row, column)]
    assert path.read_bytes() == data


def test_one_megabyte_line_string_is_analysed(tmp_path):
    data = BUG + 'BLOB = "' + "x" * (1024 * 1024) + '"\n'
    assert findings(check_source(data, "blob.py")) == [("ZG002", 7, 5)]


def test_long_implicit_string_concatenation_is_analysed():
    """Like pydoc_data/topics.py: LibCST nests concatenations, deeper than the default recursion limit."""
    data = BUG + "TEXT = (\n" + "    'line'\n" * 3000 + ")\n"
    assert findings(check_source(data, "topics.py")) == [("ZG002", 7, 5)]


def test_deepest_allowed_chain_is_analysed():
    data = BUG + "x = " + " + ".join(["a"] * (parsing.MAX_DEPTH - 10)) + "\n"
    assert findings(check_source(data, "chain.py")) == [("ZG002", 7, 5)]


def test_library_api_never_raises_on_null_bytes():
    result = check_source("x = 1\x00\nloss.backward()\nopt.step()\n", "nul.py")
    assert [p.kind for p in result.problems] == ["syntax"] and not result.diagnostics
