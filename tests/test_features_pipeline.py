"""The daily snapshots must equal a brute-force recomputation from the raw events, row by row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from registry.events.schema import EVENT_TYPES
from registry.features.pipeline import ACTIVE_TAIL_DAYS, build_user_features, feature_columns
from helpers import random_events


def brute_force(events: pd.DataFrame, user: int, at: pd.Timestamp) -> dict[str, float]:
    mine = events[(events["user_id"] == user) & (events["event_time"] < at)]
    out: dict[str, float] = {}
    for window in (1, 7, 30):
        recent = mine[mine["event_time"] >= at - pd.Timedelta(days=window)]
        for etype in EVENT_TYPES:
            out[f"{etype}_count_{window}d"] = int((recent["event_type"] == etype).sum())
    purchases = mine[mine["event_type"] == "purchase"]
    value = purchases["price"] * purchases["quantity"].astype(float)
    out["spend_total"] = float(value.sum())
    out["spend_30d"] = float(value[purchases["event_time"] >= at - pd.Timedelta(days=30)].sum())
    out["purchases_total"] = len(purchases)
    last30 = mine[mine["event_time"] >= at - pd.Timedelta(days=30)]
    out["active_days_30d"] = last30["event_time"].dt.floor("D").nunique()
    out["hours_since_last_event"] = (at - mine["event_time"].max()).total_seconds() / 3600
    carts = mine[mine["event_type"] == "cart"]
    out["hours_since_last_cart"] = (at - carts["event_time"].max()).total_seconds() / 3600 if len(carts) else np.nan
    return out


def test_snapshots_match_brute_force_recomputation():
    events = random_events()
    snapshots = build_user_features(events)
    assert list(snapshots.columns) == ["user_id", "event_timestamp", *feature_columns()]
    rng = np.random.default_rng(0)
    for i in rng.choice(len(snapshots), 60, replace=False):
        row = snapshots.iloc[i]
        expected = brute_force(events, int(row["user_id"]), row["event_timestamp"])
        for name, value in expected.items():
            assert row[name] == pytest.approx(value, nan_ok=True), (name, row["user_id"], row["event_timestamp"])


def test_snapshot_never_counts_events_at_or_after_its_timestamp():
    events = random_events()
    snapshots = build_user_features(events)
    last_event = events.groupby("user_id")["event_time"].max()
    first_snap = snapshots.groupby("user_id")["event_timestamp"].min()
    first_event = events.groupby("user_id")["event_time"].min()
    # The first snapshot is the midnight after the first event, so it sees that event and nothing later.
    assert (first_snap == first_event.dt.floor("D") + pd.Timedelta(days=1)).all()
    assert (snapshots["hours_since_last_event"] > 0).all()
    assert (snapshots.groupby("user_id")["event_timestamp"].max() <= last_event.dt.floor("D") + pd.Timedelta(days=1 + ACTIVE_TAIL_DAYS)).all()


def test_end_bounds_the_snapshots_and_drops_later_events():
    events = random_events()
    end = pd.Timestamp("2024-03-20", tz="UTC")
    snapshots = build_user_features(events, end=end)
    assert snapshots["event_timestamp"].max() == end
    full = build_user_features(events)
    same = full[full["event_timestamp"] <= end].reset_index(drop=True)
    pd.testing.assert_frame_equal(snapshots.reset_index(drop=True), same, check_dtype=False)


def test_no_events_is_a_clear_error():
    with pytest.raises(ValueError, match="no events"):
        build_user_features(random_events().iloc[:0])
