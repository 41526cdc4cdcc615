"""Feast wiring: build the FeatureStore from settings, apply the feature repo, materialize.

The feature repo (`feature_repo/` by default) holds declarations and `feature_store*.yaml`; the workspace
(`$SHOPSCORE_HOME`) holds the data, so Feast's repo path is the workspace and relative source paths in the
declarations resolve there.
"""

from __future__ import annotations

import importlib.util
import json
import string
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from feast import Entity, FeatureService, FeatureStore, FeatureView, OnDemandFeatureView, RepoConfig
from feast.data_source import DataSource
from feast.errors import FeastObjectNotFoundException

from registry.errors import UserError
from registry.features import dask_tokens
from registry.settings import Settings, template_variables

if TYPE_CHECKING:
    from feast.feast_object import FeastObject

# Variables a profile may use without the user exporting them.
DEFAULTS = {"SHOPSCORE_FEAST_PROJECT": "shopscore"}
FEAST_TYPES = (Entity, FeatureView, OnDemandFeatureView, FeatureService, DataSource)


class FeatureRepoError(UserError, RuntimeError):
    """The feature repo or its configuration is missing or invalid."""


@dataclass
class Declarations:
    """The Feast objects declared in a feature repo's Python files."""

    objects: list[FeastObject] = field(default_factory=list)

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
    variables = {**DEFAULTS, **template_variables(), "SHOPSCORE_HOME": str(settings.home)}
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


def feature_service(store: FeatureStore, name: str) -> FeatureService:
    """The applied FeatureService `name`; FeatureRepoError lists the ones there are when it is missing."""
    try:
        return store.get_feature_service(name)
    except FeastObjectNotFoundException:
        names = sorted(s.name for s in store.list_feature_services())
        fix = f"choose one of {names}" if names else "run `shopscore features apply` first"
        raise FeatureRepoError(f"no feature service named {name!r} is applied in Feast; {fix}") from None


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


# Which version of its batch source each view was last materialized from (feast dir, JSON).
MATERIALIZED_SOURCES_FILE = "materialized_sources.json"


def materialize(
    settings: Settings, *, start: datetime | None = None, end: datetime | None = None, backfill: bool = False
) -> list[str]:
    """Copy the newest feature values into the online store; returns the views reloaded from `start`.

    A view continues from where its last materialization ended (incremental) while its batch source file
    is the one it was last loaded from. A view never materialized, or whose file was rewritten since (a
    `features build` recomputes every value), is reloaded from `start` (the caller passes the oldest
    snapshot time): an incremental run would only look at rows newer than its last end and keep the old
    values of every other user. Values pushed online since are kept, as their events are in the next build.
    `backfill` reloads every view from `start`.
    """
    store = open_store(settings)
    end = end or datetime.now(UTC)
    views = [v for v in store.list_feature_views() if v.online]
    loaded = _load_signatures(settings)
    current = {v.name: _source_signature(settings, v) for v in views}
    reload = [
        v.name
        for v in views
        if backfill or not v.materialization_intervals or current[v.name] != loaded.get(v.name)
    ]
    if reload:
        if start is None:
            raise FeatureRepoError(f"views {reload} need a full load; pass a start time (--start)")
        store.materialize(start_date=start, end_date=end, feature_views=reload)
    already = [v.name for v in views if v.name not in reload]
    if already:
        store.materialize_incremental(end_date=end, feature_views=already)
    path = settings.feast_dir / MATERIALIZED_SOURCES_FILE
    path.write_text(json.dumps(current, indent=1, sort_keys=True))
    return reload


def _source_signature(settings: Settings, view: FeatureView) -> list[int | str] | None:
    """Size and modification time of a view's batch source file; None when it is not a local file."""
    source = view.batch_source
    path_text = getattr(source, "path", None)
    if not path_text or "://" in path_text:
        return None
    path = Path(path_text) if Path(path_text).is_absolute() else settings.home / path_text
    try:
        stat = path.stat()
    except OSError:
        return None
    return [str(path), stat.st_size, stat.st_mtime_ns]


def _load_signatures(settings: Settings) -> dict[str, object]:
    path = settings.feast_dir / MATERIALIZED_SOURCES_FILE
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}
