"""Where shopscore keeps things: one workspace directory plus a few URLs, read from the environment.

Everything has an embedded default under `$SHOPSCORE_HOME` (default `./.shopscore`) so a laptop needs no
setup; each part can be pointed elsewhere (PostgreSQL, Redis, another feature repo) by one variable.
"""

from __future__ import annotations

import importlib.resources
import os
from dataclasses import dataclass, replace
from pathlib import Path


def _bundled_feature_repo() -> Path:
    """The feature repo shipped with shopscore (`feature_repo/`, installed as `registry._feature_repo`)."""
    return Path(str(importlib.resources.files("registry._feature_repo")))


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

    @classmethod
    def from_env(cls, home: str | os.PathLike[str] | None = None) -> Settings:
        home_path = Path(home or os.environ.get("SHOPSCORE_HOME", ".shopscore")).expanduser().resolve()
        database_url = os.environ.get("SHOPSCORE_DATABASE_URL") or f"sqlite:///{home_path / 'registry.db'}"
        feature_repo = Path(os.environ.get("SHOPSCORE_FEATURE_REPO") or _bundled_feature_repo()).resolve()
        artifacts = os.environ.get("SHOPSCORE_ARTIFACTS_DIR") or str(home_path / "artifacts")
        return cls(
            home=home_path,
            database_url=database_url,
            feature_repo=feature_repo,
            feast_profile=os.environ.get("SHOPSCORE_FEAST_PROFILE", ""),
            artifacts_root=artifacts,
            device=os.environ.get("SHOPSCORE_DEVICE", "auto"),
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
