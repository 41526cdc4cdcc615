from __future__ import annotations

from pathlib import Path

import pytest
import torch

from registry.settings import Settings

# Real-database fixtures for the model registry tests (SQLite per test, PostgreSQL when reachable).
pytest_plugins = ["registry_fixtures"]


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A fresh embedded-default workspace under tmp_path (SQLite registry, Feast file registry, SQLite online)."""
    monkeypatch.setenv("SHOPSCORE_HOME", str(tmp_path / "home"))
    for var in (
        "SHOPSCORE_DATABASE_URL",
        "SHOPSCORE_FEAST_PROFILE",
        "SHOPSCORE_ARTIFACTS_DIR",
        "SHOPSCORE_FEATURE_REPO",
    ):
        monkeypatch.delenv(var, raising=False)
    return Settings.from_env()


@pytest.fixture
def one_torch_thread():
    """Tiny models run fastest on one thread; on a loaded machine two threads contend and run ~10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
