import importlib.util
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
if importlib.util.find_spec("lightning") is None:
    # Fixtures with a LightningModule run under the oracle with a faithful stand-in
    # (tests/stubs/lightning); an installed Lightning is used instead when present.
    sys.path.append(str(Path(__file__).resolve().parent / "stubs"))

import pytest


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Each test gets its own cache folder: results cached by one test (or by a developer's
    earlier run) must not answer for another, and the repository stays clean."""
    monkeypatch.setenv("ZGCHECK_CACHE_DIR", str(tmp_path_factory.mktemp("zgcheck_cache")))
