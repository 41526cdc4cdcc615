"""A real Feast store on the embedded default: apply, materialize, read online and point-in-time offline."""

from __future__ import annotations

import pandas as pd
import pytest

from registry.events.schema import write_events
from registry.features import pipeline
from registry.features import store as feast_store
from registry.features.training_set import build_training_set, entity_rows, labels
from registry.settings import Settings
from helpers import random_events


@pytest.fixture
def applied(settings: Settings):
    events = random_events(n=1500, users=30, days=60)
    write_events(events, settings.events_dir)
    snapshots = pipeline.build_user_features(events)
    pipeline.write_user_features(snapshots, settings.features_dir)
    feast_store.apply(settings)
    return settings, events, snapshots


def test_declared_fields_are_exactly_the_pipeline_columns(settings: Settings):
    declarations = feast_store.load_declarations(settings.feature_repo)
    (view,) = [v for v in declarations.objects if getattr(v, "name", "") == "user_activity"]
    assert [f.name for f in view.features] == pipeline.feature_columns()
    assert all(f.description for f in view.features), "every field is documented"


def test_online_features_are_the_newest_snapshot(applied):
    settings, events, snapshots = applied
    feast_store.materialize(settings, start=snapshots["event_timestamp"].min().to_pydatetime())
    store = feast_store.open_store(settings)
    users = [1, 2, 3]
    online = store.get_online_features(
        features=store.get_feature_service("purchase_v1"), entity_rows=[{"user_id": u} for u in users]
    ).to_df()
    newest = snapshots.sort_values("event_timestamp").groupby("user_id").tail(1).set_index("user_id")
    for u in users:
        got = online.set_index("user_id").loc[u]
        assert got["view_count_30d"] == newest.loc[u, "view_count_30d"]
        assert got["spend_total"] == pytest.approx(newest.loc[u, "spend_total"])


def test_unknown_user_reads_as_missing_online(applied):
    settings, _, snapshots = applied
    feast_store.materialize(settings, start=snapshots["event_timestamp"].min().to_pydatetime())
    store = feast_store.open_store(settings)
    row = store.get_online_features(
        features=store.get_feature_service("purchase_v1"), entity_rows=[{"user_id": 987654}]
    ).to_dict()
    assert row["view_count_30d"] == [None]


def test_training_set_uses_no_event_after_its_cutoff(applied):
    settings, events, _ = applied
    store = feast_store.open_store(settings)
    cutoffs = [pd.Timestamp("2024-03-20 15:30", tz="UTC"), pd.Timestamp("2024-04-10 08:00", tz="UTC")]
    frame = build_training_set(store, events, service_name="purchase_v1", cutoffs=cutoffs, horizon_days=7)
    assert len(frame) == len(entity_rows(events, cutoffs))
    for _, row in frame.iterrows():
        cutoff = row["event_timestamp"]
        # Features come from the midnight snapshot at or before the cutoff: nothing after it is visible.
        visible = events[(events["user_id"] == row["user_id"]) & (events["event_time"] < cutoff.floor("D"))]
        recent = visible[visible["event_time"] >= cutoff.floor("D") - pd.Timedelta(days=30)]
        assert row["view_count_30d"] == (recent["event_type"] == "view").sum()


def test_labels_come_strictly_after_the_cutoff_within_the_horizon():
    events = random_events(n=800, users=10, days=40)
    cutoff = pd.Timestamp("2024-03-15", tz="UTC")
    rows = entity_rows(events, [cutoff])
    got = labels(events, rows, horizon_days=5).set_index("user_id")
    window = events[
        (events["event_type"] == "purchase")
        & (events["event_time"] > cutoff)
        & (events["event_time"] <= cutoff + pd.Timedelta(days=5))
    ]
    for user, row in got.iterrows():
        assert row["label_purchase"] == int(user in set(window["user_id"]))


def test_missing_profile_is_a_clear_error(settings: Settings):
    with pytest.raises(feast_store.FeatureRepoError, match="SHOPSCORE_FEAST_PROFILE"):
        feast_store.repo_config(settings.with_(feast_profile="nope"))
