"""The feature contract (registry/features/contract.py) is the one place the feature names are declared: the
feature repo's Feast objects carry exactly its names, columns and files, the builders write exactly its
files and columns, and no other module of registry/, plugins/ or feature_repo/ spells a view, service,
source or file name itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from feast import (
    Entity,
    FeatureService,
    FeatureView,
    FileSource,
    OnDemandFeatureView,
    PushSource,
    RequestSource,
)
from helpers import random_events

from registry.features import contract as c
from registry.features.build import build_all
from registry.features.feast_store import Declarations, load_declarations
from registry.settings import Settings

ROOT = Path(__file__).parent.parent
LAG_VIEWS = [c.lag_view(days) for days in c.LAG_DAYS]


@pytest.fixture(scope="module")
def declared() -> Declarations:
    return load_declarations(ROOT / "feature_repo")


def names(declared: Declarations, kind: type) -> set[str]:
    return {o.name for o in declared.of_type(kind)}


def test_the_feature_repo_declares_exactly_the_contracts_names(declared: Declarations):
    (user,) = declared.of_type(Entity)
    assert (user.name, user.join_key) == (c.ENTITY, c.JOIN_KEY)
    assert names(declared, FeatureView) == set(c.VIEW_FILES)
    assert names(declared, OnDemandFeatureView) == {c.RECENCY_VIEW, c.LIFETIME_REQUEST_VIEW}
    assert names(declared, FeatureService) == set(c.SERVICES)
    assert names(declared, PushSource) == {c.REALTIME_PUSH_SOURCE}
    assert names(declared, RequestSource) == {c.REQUEST_SOURCE}
    (request,) = declared.of_type(RequestSource)
    assert [f.name for f in request.schema] == [c.REQUEST_TS]
    file_sources = {c.ACTIVITY_SOURCE, c.SEQUENCE_SOURCE, c.REALTIME_SOURCE, c.LIFETIME_SOURCE}
    assert names(declared, FileSource) == file_sources | {c.lag_source(days) for days in c.LAG_DAYS}


def test_every_view_reads_the_contracts_file(declared: Declarations, settings: Settings):
    for view in declared.of_type(FeatureView):
        source = view.batch_source
        assert source.path == c.source_path(c.VIEW_FILES[view.name]), view.name
        lag = {c.lag_view(days): c.lag_visible_at(days) for days in c.LAG_DAYS}
        assert source.timestamp_field == lag.get(view.name, c.TIMESTAMP_FIELD), view.name
    (push,) = declared.of_type(PushSource)
    assert push.batch_source.path == c.source_path(c.REALTIME_FILE)
    assert set(c.VIEW_FILES.values()) == set(c.FILES)
    # The repo's relative paths resolve to where the builders write: the workspace's features directory.
    for name in c.FILES:
        assert settings.home / c.source_path(name) == settings.features_dir / name


def test_declared_fields_are_exactly_the_contract_columns(declared: Declarations):
    views = {v.name: v for v in declared.of_type(FeatureView)}
    columns = {
        c.ACTIVITY_VIEW: c.feature_columns(),
        c.SEQUENCE_VIEW: c.sequence_columns(),
        c.SEQUENCE_HISTORY_VIEW: c.sequence_columns(),
        c.REALTIME_VIEW: c.realtime_columns(),
        c.LIFETIME_VIEW: c.lifetime_columns(),
        **{c.lag_view(days): c.lagged_columns(days) for days in c.LAG_DAYS},
    }
    assert {name: [f.name for f in view.features] for name, view in views.items()} == columns
    for view in views.values():
        assert view.ttl and view.ttl.total_seconds() > 0, f"{view.name} has a TTL"
        assert all(f.description for f in view.features), f"every field of {view.name} is documented"
    on_demand = {v.name: [f.name for f in v.features] for v in declared.of_type(OnDemandFeatureView)}
    assert on_demand == {c.RECENCY_VIEW: c.recency_columns(), c.LIFETIME_REQUEST_VIEW: c.request_columns()}


def test_the_builders_write_the_contracts_columns_to_the_contracts_files(tmp_path: Path):
    written = build_all(random_events(n=300, users=10, days=20), tmp_path)
    assert set(written) == {c.ACTIVITY_VIEW, c.SEQUENCE_VIEW, c.REALTIME_VIEW, c.LIFETIME_VIEW, *LAG_VIEWS}
    for view, path in written.items():
        assert path == tmp_path / c.VIEW_FILES[view], view
    keys = [c.JOIN_KEY, c.TIMESTAMP_FIELD]
    lags = [
        *(c.lag_visible_at(days) for days in c.LAG_DAYS),
        *(n for d in c.LAG_DAYS for n in c.lagged_columns(d)),
    ]
    expected = {
        c.FEATURES_FILE: keys + c.feature_columns(),
        c.SEQUENCES_FILE: keys + c.sequence_columns(),
        c.REALTIME_FILE: keys + c.realtime_columns(),
        c.LIFETIME_FILE: keys + c.lifetime_columns(),
        c.LAGS_FILE: keys + lags,
    }
    for name, columns in expected.items():
        assert sorted(pq.read_schema(tmp_path / name).names) == sorted(columns), name


def _contract_names() -> set[str]:
    """Every view, service, source and file name the contract declares (not the join key `user_id`, which is
    also the canonical events' column, nor the entity's plain `user`)."""
    declared = {
        *c.VIEW_FILES,
        c.RECENCY_VIEW,
        c.LIFETIME_REQUEST_VIEW,
        *c.SERVICES,
        c.ACTIVITY_SOURCE,
        c.SEQUENCE_SOURCE,
        c.REALTIME_SOURCE,
        c.REALTIME_PUSH_SOURCE,
        c.LIFETIME_SOURCE,
        c.REQUEST_SOURCE,
        *(c.lag_source(days) for days in c.LAG_DAYS),
        *c.FILES,
    }
    return declared | {c.source_path(name) for name in c.FILES}


@pytest.mark.parametrize(
    "path",
    sorted(
        p
        for folder in ("registry", "plugins", "feature_repo")
        for p in (ROOT / folder).rglob("*.py")
        if p != ROOT / "registry" / "features" / "contract.py"
    ),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_module_but_the_contract_spells_a_feature_name(path: Path):
    contract_names = _contract_names()
    spelled = sorted(
        {
            node.value
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and node.value in contract_names
        }
    )
    assert not spelled, (
        f"{path.relative_to(ROOT)} spells {spelled}; import the name from registry.features.contract "
        f"(plugins: from registry.plugin_api)"
    )
