"""The lifetime view must equal a brute-force recomputation from the raw events, and its request-time
features must be exact at any request time, however long the user has been quiet."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import random_events

from registry.features.contract import LAG_DAYS, lifetime_columns, request_columns
from registry.features.lifetime import (
    build_lifetime_lags,
    build_user_lifetime,
    lifetime_at_request,
)


def brute_force(events: pd.DataFrame, user: int, at: pd.Timestamp) -> dict[str, float]:
    mine = events[(events["user_id"] == user) & (events["event_time"] <= at)]
    buys = mine[mine["event_type"] == "purchase"]
    value = buys["price"].fillna(0.0) * buys["quantity"].fillna(1).astype(float)
    newest = buys["event_time"].max() if len(buys) else None
    return {
        "first_event_at": mine["event_time"].min().timestamp(),
        "last_event_at": mine["event_time"].max().timestamp(),
        "first_purchase_at": buys["event_time"].min().timestamp() if len(buys) else np.nan,
        "last_purchase_at": newest.timestamp() if len(buys) else np.nan,
        "events_total": len(mine),
        "active_days_total": mine["event_time"].dt.floor("D").nunique(),
        "purchases_total": len(buys),
        "purchase_days_total": buys["event_time"].dt.floor("D").nunique(),
        "items_total": float(buys["quantity"].fillna(1).sum()),
        "spend_total": float(value.sum()),
        "last_purchase_value": float(value[buys["event_time"] == newest].sum()) if len(buys) else np.nan,
    }


def test_lifetime_rows_match_brute_force_and_are_stamped_at_each_instant():
    events = random_events(n=700, users=9, days=120)
    # Two events of one user at one instant give one row holding both.
    twin = events.iloc[[0]].assign(event_type="purchase", price=10.0, quantity=2)
    events = pd.concat([events, twin], ignore_index=True)
    table = build_user_lifetime(events).to_pandas()
    assert list(table.columns) == ["user_id", "event_timestamp", *lifetime_columns()]
    assert not table.duplicated(["user_id", "event_timestamp"]).any()
    assert len(table) == len(events.drop_duplicates(["user_id", "event_time"]))
    for _, row in table.sample(120, random_state=0).iterrows():
        expected = brute_force(events, row["user_id"], row["event_timestamp"])
        for name, value in expected.items():
            got = row[name]
            assert (np.isnan(value) and np.isnan(got)) or got == pytest.approx(value), (name, row["user_id"])


def test_request_time_features_are_exact_for_a_dormant_user():
    day = 86_400.0
    state = {
        "first_event_at": [0.0, None],
        "last_event_at": [30 * day, None],
        "first_purchase_at": [0.0, None],
        "last_purchase_at": [30 * day, None],
        "purchases_total": [3, None],
        "purchase_days_total": [3, None],
        "spend_total": [60.0, None],
    }
    # The lag views' totals as of 30 .. 365 days before the request (day 365 .. 30): the same three
    # purchases, as the last one was on day 30; 400 days before, nothing yet.
    for days in LAG_DAYS:
        state[f"purchases_total_{days}d_ago"] = [3, None]
        state[f"purchase_days_total_{days}d_ago"] = [3, None]
        state[f"spend_total_{days}d_ago"] = [60.0, None]
    # A year after the last purchase: the lifetime state still answers, and "now" moves every feature.
    got = lifetime_at_request(state, [395 * day, 395 * day])
    first = {name: values[0] for name, values in got.items()}
    assert list(got) == request_columns()
    assert first["days_since_last_purchase"] == pytest.approx(365.0)
    assert first["days_since_first_event"] == pytest.approx(395.0)
    assert first["mean_days_between_purchase_days"] == pytest.approx(15.0)
    assert first["days_since_last_purchase_per_mean_gap"] == pytest.approx(365.0 / 15.0)
    assert first["purchase_days_per_30d"] == pytest.approx(30 * 3 / 395)
    assert first["mean_purchase_value"] == pytest.approx(20.0)
    assert all(first[f"{what}_last_{days}d"] == 0.0 for days in LAG_DAYS for what in ("purchases", "spend"))
    # No lag rows (nothing that long ago, e.g. a new user): the whole total lies inside every window.
    early = lifetime_at_request(
        {**state, **{k: [None, None] for k in state if k.endswith("_ago")}}, [20 * day, None]
    )
    assert early["purchases_last_30d"][0] == 3.0 and early["spend_last_365d"][0] == 60.0
    assert all(np.isnan(values[1]) for values in got.values()), "an unknown user reads as missing"


def test_lagged_totals_give_exact_windows_at_any_time():
    """A point-in-time lookup of the lag rows (as Feast does) at a cutoff c returns the totals as of c - L, so
    today's total minus it counts exactly the purchases in (c - L, c]."""
    events = random_events(n=900, users=6, days=400)
    lifetime = build_user_lifetime(events)
    lags = build_lifetime_lags(lifetime).to_pandas()
    now = lifetime.to_pandas()
    buys = events[events["event_type"] == "purchase"]
    rng = np.random.default_rng(0)
    for _ in range(40):
        user = int(rng.integers(1, 7))
        mine = events[events["user_id"] == user]
        cutoff = mine["event_time"].min() + pd.Timedelta(seconds=int(rng.integers(0, 400 * 86400)))
        current = now[(now["user_id"] == user) & (now["event_timestamp"] <= cutoff)].iloc[-1]
        for days in LAG_DAYS:
            visible = lags[(lags["user_id"] == user) & (lags[f"visible_at_{days}d"] <= cutoff)]
            before = visible.sort_values(f"visible_at_{days}d", kind="stable").iloc[-1]
            window = current["purchases_total"] - before[f"purchases_total_{days}d_ago"]
            inside = buys[
                (buys["user_id"] == user)
                & (buys["event_time"] > cutoff - pd.Timedelta(days=days))
                & (buys["event_time"] <= cutoff)
            ]
            assert window == len(inside), (user, cutoff, days)
