"""bench.experiments.sequence_gain_sources' hand-made aggregates: each sees only events strictly before its
row's cutoff, and counts what its docstring says."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.experiments import sequence_gain_sources as experiment

T = pd.Timestamp("2024-02-01", tz="UTC")
HOUR = pd.Timedelta(hours=1)


@pytest.fixture
def shop() -> tuple[pd.DataFrame, pd.DataFrame]:
    """User 1: a search session 30 hours before T, a view-view-cart session ending 2 hours before T, and a
    view after T (which nothing may see). User 2: one view 9 days before T (outside every 7-day window)."""
    rows = [
        (1, T - 30 * HOUR, "search", "1-1", "shoes", None),
        (1, T - 4 * HOUR, "view", "1-2", "shoes", 10),
        (1, T - 3 * HOUR, "view", "1-2", "phones", 20),
        (1, T - 2 * HOUR, "cart", "1-2", "shoes", 10),
        (1, T + 1 * HOUR, "view", "1-3", "shoes", 10),
        (2, T - 9 * 24 * HOUR, "view", "2-1", "phones", 20),
    ]
    events = pd.DataFrame(
        rows, columns=["user_id", "event_time", "event_type", "session_id", "category", "item_id"]
    )
    return events, pd.DataFrame({"user_id": [1, 2], "event_timestamp": [T, T]})


def test_daily_counts_split_the_week_by_day(shop):
    events, rows = shop
    got = experiment.daily_counts(events, rows)
    assert got.loc[0, "day1_view"] == 2 and got.loc[0, "day1_cart"] == 1 and got.loc[0, "day1_sessions"] == 1
    assert got.loc[0, "day2_search"] == 1 and got.loc[0, "day2_view"] == 0
    assert got.loc[1].sum() == 0, "a view 9 days back is in no day of the last week"


def test_last_sessions_newest_first_with_ages(shop):
    events, rows = shop
    got = experiment.last_sessions(events, rows)
    assert got.loc[0, ["session0_size", "session0_carts", "session0_searches"]].tolist() == [3, 1, 0]
    assert got.loc[0, "session0_hours_ago"] == pytest.approx(2.0)
    assert got.loc[0, ["session1_size", "session1_searches"]].tolist() == [1, 1]
    assert got.loc[0, "session1_hours_ago"] == pytest.approx(30.0)
    assert got.loc[0, "session2_size"] == 0 and got.loc[0, "session2_hours_ago"] == experiment.NO_EVENT_HOURS
    assert got.loc[1, "session0_hours_ago"] == pytest.approx(9 * 24.0), "user 2's session, not user 1's"
    assert got.loc[1, "session1_size"] == 0


def test_hours_since_ignores_the_event_after_the_cutoff(shop):
    events, rows = shop
    got = experiment.hours_since(events, rows)
    np.testing.assert_allclose(
        got.loc[0, ["hours_since_view", "hours_since_search", "hours_since_cart"]], [3, 30, 2]
    )
    assert got.loc[0, "hours_since_favorite"] == experiment.NO_EVENT_HOURS
    assert got.loc[1, "hours_since_view"] == pytest.approx(9 * 24.0)


def test_focus_counts_views_and_carts_of_the_week(shop):
    events, rows = shop
    got = experiment.focus(events, rows)
    # Views and carts of the week: shoes/10 twice, phones/20 once (the search has no item).
    assert got.loc[0, "top_category_7d"] == 2 and got.loc[0, "top_item_7d"] == 2
    assert got.loc[0, "top_category_share_7d"] == pytest.approx(2 / 3)
    assert got.loc[1].sum() == 0


def test_last_events_newest_first_relative_to_the_newest(shop):
    events, rows = shop
    got = experiment.last_events(events, rows)
    hours = [got.loc[0, f"event{k}_hours_ago"] for k in range(4)]
    np.testing.assert_allclose(hours, [2, 3, 4, 30])  # the view after T is not among them
    assert [got.loc[0, f"event{k}_same_category"] for k in range(4)] == [1, 0, 1, 1]
    assert [got.loc[0, f"event{k}_same_session"] for k in range(4)] == [1, 1, 1, 0]
    assert got.loc[0, "event4_type"] == -1 and np.isnan(got.loc[0, "event4_hours_ago"])
    assert got.loc[0, "event0_type"] != got.loc[0, "event1_type"], "a cart, then a view"
    assert got.loc[1, "event0_hours_ago"] == pytest.approx(9 * 24.0) and got.loc[1, "event1_type"] == -1
