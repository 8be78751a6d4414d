"""Read the diagnostics a fixture expects from its inline `# expect: ZG00N` markers."""
from __future__ import annotations

import re
from pathlib import Path

EXPECT = re.compile(r"#\s*expect:\s*([A-Z0-9,\s]+?)\s*$")
ROOT = Path(__file__).resolve().parent.parent / "fixtures"


def expected(text: str) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = EXPECT.search(line)
        if match:
            found.extend((number, code.strip()) for code in match.group(1).split(",") if code.strip())
    return sorted(found)


def fixture_files() -> list[Path]:
    # projects/: checked as trees; runtime/: checked by running them (test_runtime_fixtures)
    skip = {"fix", "problems", "notebooks", "projects", "runtime"}
    return sorted(p for p in ROOT.rglob("*.py") if not (set(p.relative_to(ROOT).parts) & skip))


def project_dirs() -> list[Path]:
    """Multi-file fixtures: each folder of fixtures/projects/ is checked as one tree."""
    return sorted(p for p in (ROOT / "projects").iterdir() if p.is_dir())
