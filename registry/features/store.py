"""Feast wiring: build the FeatureStore from settings, apply the feature repo, materialize.

The feature repo (`feature_repo/` by default) holds declarations and `feature_store*.yaml`; the workspace
(`$SHOPSCORE_HOME`) holds the data, so Feast's repo path is the workspace and relative source paths in the
declarations resolve there.
"""

from __future__ import annotations

import importlib.util
import os
import string
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml
from feast import Entity, FeatureService, FeatureStore, FeatureView, OnDemandFeatureView, RepoConfig
from feast.data_source import DataSource

from registry.features import dask_tokens
from registry.settings import Settings

# Variables a profile may use without the user exporting them.
DEFAULTS = {"SHOPSCORE_FEAST_PROJECT": "shopscore"}
FEAST_TYPES = (Entity, FeatureView, OnDemandFeatureView, FeatureService, DataSource)


class FeatureRepoError(RuntimeError):
    """The feature repo or its configuration is missing or invalid."""


@dataclass
class Declarations:
    """The Feast objects declared in a feature repo's Python files."""

    objects: list[object] = field(default_factory=list)

    def of_type(self, kind: type) -> list:
        return [o for o in self.objects if isinstance(o, kind)]


def repo_config(settings: Settings) -> RepoConfig:
    """Read the profile's feature_store yaml, expanding ${VARS} from the environment and the settings."""
    path = settings.feature_store_yaml
    if not path.is_file():
        raise FeatureRepoError(
            f"feature store config {path} not found; set SHOPSCORE_FEATURE_REPO to a directory holding "
            f"feature_store.yaml, or SHOPSCORE_FEAST_PROFILE to a profile that exists there"
        )
    variables = {**DEFAULTS, **os.environ, "SHOPSCORE_HOME": str(settings.home)}
    template = string.Template(path.read_text())
    try:
        raw = yaml.safe_load(template.substitute(variables))
    except KeyError as exc:
        raise FeatureRepoError(f"{path} uses ${{{exc.args[0]}}}, which is not set; export it first") from None
    raw["repo_path"] = str(settings.home)
    return RepoConfig(**raw)


def open_store(settings: Settings) -> FeatureStore:
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    dask_tokens.install()  # the file offline store's dask joins, minutes faster on list features
    return FeatureStore(config=repo_config(settings))


def load_declarations(feature_repo: Path) -> Declarations:
    """Import every .py file of the feature repo (as Feast does) and collect the Feast objects in them."""
    found = Declarations()
    files = sorted(p for p in feature_repo.glob("*.py") if not p.name.startswith("_"))
    if not files:
        raise FeatureRepoError(f"no declarations (*.py) in feature repo {feature_repo}")
    for path in files:
        module_name = f"_shopscore_feature_repo.{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        for value in vars(module).values():
            if isinstance(value, FEAST_TYPES) and not any(value is o for o in found.objects):
                found.objects.append(value)
    return found


def apply(settings: Settings) -> Declarations:
    """`feast apply`: register the repo's declarations in the Feast registry and create online tables."""
    declarations = load_declarations(settings.feature_repo)
    store = open_store(settings)
    store.apply(declarations.objects)
    return declarations


def materialize(
    settings: Settings, *, start: datetime | None = None, end: datetime | None = None, backfill: bool = False
) -> None:
    """Copy the newest feature values into the online store.

    Incremental by default: each view continues from where its last materialization ended. The first run
    has no such mark, so it starts at `start` (the caller passes the oldest snapshot time). `backfill`
    reloads every view from `start`, e.g. after rebuilding the snapshots.
    """
    store = open_store(settings)
    end = end or datetime.now(UTC)
    views = [v for v in store.list_feature_views() if v.online]
    if backfill:
        if start is None:
            raise FeatureRepoError("a backfill needs a start time; pass --start")
        store.materialize(start_date=start, end_date=end, feature_views=[v.name for v in views])
        return
    never_materialized = [v.name for v in views if not v.materialization_intervals]
    if never_materialized:
        if start is None:
            raise FeatureRepoError(
                f"views {never_materialized} were never materialized; pass a start time for the first run"
            )
        store.materialize(start_date=start, end_date=end, feature_views=never_materialized)
    already = [v.name for v in views if v.materialization_intervals]
    if already:
        store.materialize_incremental(end_date=end, feature_views=already)
