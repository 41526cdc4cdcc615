"""Where shopscore keeps things: one workspace directory plus a few URLs, read from the environment.

Everything has an embedded default under `$SHOPSCORE_HOME` (default `./.shopscore`) so a laptop needs no
setup; each part can be pointed elsewhere (PostgreSQL, Redis, another feature repo) by one variable.
"""

from __future__ import annotations

import importlib.resources
import os
from dataclasses import dataclass, replace
from pathlib import Path

from registry.errors import UserError


def _bundled_feature_repo() -> Path:
    """The feature repo shipped with shopscore (`feature_repo/`, installed as `registry._feature_repo`)."""
    return Path(str(importlib.resources.files("registry._feature_repo")))


def workspace_database_url(home: Path) -> str:
    """The embedded default model registry: a SQLite file in the workspace."""
    return f"sqlite:///{home / 'registry.db'}"


def _positive_number(variable: str) -> float | None:
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise UserError(f"{variable}={raw!r} is not a positive number; set it to e.g. 4, or unset it")
    return value


@dataclass(frozen=True)
class Settings:
    """Resolved configuration. Build it with `Settings.from_env()`; override fields with `.with_(...)`."""

    home: Path
    database_url: str
    feature_repo: Path
    # Which `feature_store*.yaml` in the feature repo to use: "" is the embedded default
    # (file registry + SQLite online store); "redis" selects feature_store.redis.yaml, and so on.
    feast_profile: str = ""
    # A local directory or any fsspec URL (s3://bucket/prefix, gs://...): kept as a string, never resolved.
    artifacts_root: str = ""
    # "auto" picks CUDA when torch sees a GPU, else CPU.
    device: str = "auto"
    # The memory a training set may take, in GiB; None: 80% of what the machine has available.
    train_memory_gb: float | None = None

    @classmethod
    def from_env(cls, home: str | os.PathLike[str] | None = None) -> Settings:
        home_path = Path(home or os.environ.get("SHOPSCORE_HOME", ".shopscore")).expanduser().resolve()
        database_url = os.environ.get("SHOPSCORE_DATABASE_URL") or workspace_database_url(home_path)
        feature_repo = Path(os.environ.get("SHOPSCORE_FEATURE_REPO") or _bundled_feature_repo()).resolve()
        artifacts = os.environ.get("SHOPSCORE_ARTIFACTS_DIR") or str(home_path / "artifacts")
        return cls(
            home=home_path,
            database_url=database_url,
            feature_repo=feature_repo,
            feast_profile=os.environ.get("SHOPSCORE_FEAST_PROFILE", ""),
            artifacts_root=artifacts,
            device=os.environ.get("SHOPSCORE_DEVICE", "auto"),
            train_memory_gb=_positive_number("SHOPSCORE_TRAIN_MEMORY_GB"),
        )

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def events_dir(self) -> Path:
        return self.home / "events"

    @property
    def features_dir(self) -> Path:
        return self.home / "features"

    @property
    def feast_dir(self) -> Path:
        """Feast's own files (registry.db, online_store.db) for the embedded profile."""
        return self.home / "feast"

    @property
    def feature_store_yaml(self) -> Path:
        name = f"feature_store.{self.feast_profile}.yaml" if self.feast_profile else "feature_store.yaml"
        return self.feature_repo / name
