"""Fixtures shared by the whole suite."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_ROOT / "flows" / "stormwatch.yaml"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own STORMWATCH_HOME, so no test reads or writes the user's state."""
    home = tmp_path / "stormwatch-home"
    monkeypatch.setenv("STORMWATCH_HOME", str(home))
    monkeypatch.delenv("STORMWATCH_DATABASE_URL", raising=False)
    monkeypatch.delenv("STORMWATCH_CONFIG", raising=False)
    return home
