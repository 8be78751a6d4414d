"""Which files a directory walk yields."""
from __future__ import annotations

import os

from zgcheck.discovery import discover


def names(found, root):
    return sorted(os.path.relpath(f, root) for f in found.files)


def test_default_excludes_and_gitignore(tmp_path):
    for rel in ("a.py", "pkg/b.py", ".hidden/c.py", "venv/d.py", "__pycache__/e.py", "build/f.py",
                "dist/g.py", "lib/site-packages/h.py", "myenv/i.py", "gen/j.py", "pkg/k.txt", "pkg/out_l.py"):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x = 1\n")
    (tmp_path / "myenv" / "pyvenv.cfg").write_text("home = /usr\n")
    (tmp_path / ".gitignore").write_text("gen/\n")
    (tmp_path / "pkg" / ".gitignore").write_text("out_*.py\n")
    found = discover([str(tmp_path)])
    assert names(found, tmp_path) == ["a.py", "pkg/b.py"]
    assert found.problems == []


def test_a_package_named_env_is_checked_a_virtual_environment_named_env_is_not(tmp_path):
    """RL projects keep their environments in `env/` (mbrl-lib, SLM-Lab): code, not a venv."""
    for rel in ("rl/env/cartpole.py", "venvs/env/lib/x.py", "conda/env/lib/y.py"):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x = 1\n")
    (tmp_path / "venvs" / "env" / "pyvenv.cfg").write_text("home = /usr\n")
    (tmp_path / "conda" / "env" / "conda-meta").mkdir()
    assert names(discover([str(tmp_path)]), tmp_path) == ["rl/env/cartpole.py"]


def test_explicit_file_is_always_checked(tmp_path):
    (tmp_path / ".gitignore").write_text("*.py\n")
    (tmp_path / "a.py").write_text("x = 1\n")
    assert discover([str(tmp_path / "a.py")]).files == [str(tmp_path / "a.py")]
    assert discover([str(tmp_path)]).files == []


def test_directory_loop_is_reported_once(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.py").write_text("x = 1\n")
    os.symlink(tmp_path, tmp_path / "sub" / "back")
    found = discover([str(tmp_path)])
    assert names(found, tmp_path) == ["sub/a.py"]
    assert len(found.problems) == 1 and "directory loop" in found.problems[0].message
