"""Configuration, read in one place: every environment variable shopscore reads is read here.

`Settings` is where shopscore keeps things: one workspace directory plus a few URLs. Everything has an
embedded default under `$SHOPSCORE_HOME` (default `./.shopscore`) so a laptop needs no setup; each part can
be pointed elsewhere (PostgreSQL, Redis, another feature repo) by one variable. The functions below the
class read the process-wide switches (debugging, plugin selection, promotion policy, serving routes, the
audit log's default actor), which apply to a process rather than to a workspace.
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


# --- process-wide switches -------------------------------------------------------------------------------


def debug_enabled() -> bool:
    """SHOPSCORE_DEBUG=1 (or any value but 0/empty) shows tracebacks instead of one-line errors."""
    return os.environ.get("SHOPSCORE_DEBUG", "").strip() not in ("", "0")


def _names(variable: str) -> set[str] | None:
    raw = os.environ.get(variable)
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def plugin_selection() -> tuple[set[str] | None, set[str]]:
    """(allowed, disabled) plugin names: SHOPSCORE_LOAD_PLUGINS (None: all) and SHOPSCORE_DISABLE_PLUGINS."""
    return _names("SHOPSCORE_LOAD_PLUGINS"), _names("SHOPSCORE_DISABLE_PLUGINS") or set()


def plugin_selection_set() -> bool:
    """Whether either plugin variable is set (an error about a missing plugin then mentions them)."""
    return bool(os.environ.get("SHOPSCORE_DISABLE_PLUGINS") or os.environ.get("SHOPSCORE_LOAD_PLUGINS"))


@dataclass(frozen=True)
class PromotionVariables:
    """The promotion policy's variables as given (promotion.PromotionPolicy parses and checks them)."""

    protected_aliases: str  # SHOPSCORE_PROTECTED_ALIASES, comma-separated
    tolerance: str  # SHOPSCORE_PROMOTION_TOLERANCE
    promoter_token: str | None  # SHOPSCORE_PROMOTER_TOKEN


def promotion_variables() -> PromotionVariables:
    return PromotionVariables(
        protected_aliases=os.environ.get("SHOPSCORE_PROTECTED_ALIASES", "production"),
        tolerance=os.environ.get("SHOPSCORE_PROMOTION_TOLERANCE", "0.01"),
        promoter_token=os.environ.get("SHOPSCORE_PROMOTER_TOKEN") or None,
    )


def actor_variable() -> str | None:
    """SHOPSCORE_ACTOR: who the audit log names when a command gives no --actor."""
    return os.environ.get("SHOPSCORE_ACTOR") or None


SERVING_CONFIG_VARIABLE = "SHOPSCORE_SERVING_CONFIG"


def serving_config_path() -> str | None:
    """SHOPSCORE_SERVING_CONFIG: the YAML file of per-model traffic splits and shadow aliases."""
    return os.environ.get(SERVING_CONFIG_VARIABLE) or None


def crash_step() -> str | None:
    """SHOPSCORE_TEST_CRASH_AT: fault injection for the registry's crash-safety tests."""
    return os.environ.get("SHOPSCORE_TEST_CRASH_AT")


def template_variables() -> dict[str, str]:
    """The environment, for ${VARS} in a feature repo's feature_store*.yaml."""
    return dict(os.environ)
