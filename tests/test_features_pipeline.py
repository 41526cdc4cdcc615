"""The snapshots must equal a brute-force recomputation from the raw events, row by row, at every grain; so
must the sequences and the real-time rows, and `build_all` must write exactly what the builders return."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from helpers import random_events

from registry.events.generate import generate_events
from registry.events.schema import EVENT_TYPES
from registry.features import build
from registry.features.contract import (
    ACTIVE_TAIL_DAYS,
    ACTIVITY_VIEW,
    DISTINCT_WINDOWS_DAYS,
    NO_PREVIOUS_EVENT,
    QUERY_COUNT,
    REALTIME_VIEW,
    SEQUENCE_LENGTH,
    SEQUENCE_VIEW,
    WINDOWS_DAYS,
    category_id,
    event_type_id,
    feature_columns,
    parse_grain,
    price_bucket,
    realtime_columns,
    sequence_columns,
)
from registry.features.files import write_user_features
from registry.features.realtime import realtime_rows
from registry.features.sequences import build_user_sequences
from registry.features.snapshots import build_user_features, iter_user_features


def brute_force(events: pd.DataFrame, user: int, at: pd.Timestamp) -> dict[str, float]:
    mine = events[events["user_id"] == user]
    mine = mine[mine["event_time"] < at].astype({"event_type": object})  # object compares fast
    out: dict[str, float] = {}

    def since(delta: pd.Timedelta) -> pd.DataFrame:
        return mine[mine["event_time"] >= at - delta]

    for window in WINDOWS_DAYS:
        recent = since(pd.Timedelta(days=window))
        for etype in EVENT_TYPES:
            out[f"{etype}_count_{window}d"] = int((recent["event_type"] == etype).sum())
    for etype in EVENT_TYPES:
        out[f"{etype}_count_1h"] = int((since(pd.Timedelta(hours=1))["event_type"] == etype).sum())
    purchases = mine[mine["event_type"] == "purchase"]
    value = purchases["price"] * purchases["quantity"].astype(float)
    out["spend_total"] = float(value.sum())
    out["spend_30d"] = float(value[purchases["event_time"] >= at - pd.Timedelta(days=30)].sum())
    out["purchases_total"] = len(purchases)
    last30 = since(pd.Timedelta(days=30))
    out["active_days_30d"] = last30["event_time"].dt.floor("D").nunique()
    out["hours_since_last_event"] = (at - mine["event_time"].max()).total_seconds() / 3600
    for kind in ("cart", "purchase"):
        times = mine.loc[mine["event_type"] == kind, "event_time"]
        out[f"hours_since_last_{kind}"] = (at - times.max()).total_seconds() / 3600 if len(times) else np.nan
    for days in DISTINCT_WINDOWS_DAYS:
        recent = since(pd.Timedelta(days=days))
        out[f"distinct_items_{days}d"] = recent["item_id"].nunique()  # exact, straight from the events
        out[f"distinct_categories_{days}d"] = recent["category"].nunique()
    out["sessions_7d"] = since(pd.Timedelta(days=7))["session_id"].nunique()
    views = last30[(last30["event_type"] == "view") & last30["price"].notna()]
    out["mean_view_price_30d"] = float(views["price"].mean()) if len(views) else np.nan
    return out


def brute_force_sequence(events: pd.DataFrame, user: int, at: pd.Timestamp) -> dict[str, list]:
    mine = events[events["user_id"] == user].sort_values("event_time", kind="stable")
    gaps = (mine["event_time"].diff().dt.total_seconds().fillna(NO_PREVIOUS_EVENT)).astype("int64")
    before = mine["event_time"] < at
    last = mine[before].tail(SEQUENCE_LENGTH)
    searches = mine[before & (mine["event_type"] == "search") & mine["query"].notna()]
    return {
        "seq_event_type": [event_type_id(t) for t in last["event_type"]],
        "seq_category": [category_id(None if pd.isna(c) else c) for c in last["category"]],
        "seq_price_bucket": price_bucket(last["price"].to_numpy(dtype=float, na_value=np.nan)).tolist(),
        "seq_seconds_since_prev": gaps[before].tail(SEQUENCE_LENGTH).tolist(),
        "last_queries": searches["query"].tail(QUERY_COUNT).tolist(),
    }


def assert_rows_match_brute_force(events: pd.DataFrame, snapshots: pd.DataFrame) -> None:
    rng = np.random.default_rng(0)
    # Half the rows are drawn right after activity, where the short windows are rarely zero.
    active = snapshots.index[snapshots["view_count_1h"] + snapshots["cart_count_1h"] > 0].to_numpy()
    picks = np.r_[rng.choice(len(snapshots), 20, replace=False), rng.choice(active, min(20, len(active)))]
    for i in picks:
        row = snapshots.iloc[i]
        expected = brute_force(events, int(row["user_id"]), row["event_timestamp"])
        for name, value in expected.items():
            assert row[name] == pytest.approx(value, nan_ok=True), (
                name,
                row["user_id"],
                row["event_timestamp"],
            )


@pytest.mark.parametrize("grain", ["1d", "6h", "1h"])
def test_snapshots_match_brute_force_recomputation(grain: str):
    events = random_events(n=900)
    snapshots = build_user_features(events, grain=grain)
    assert list(snapshots.columns) == ["user_id", "event_timestamp", *feature_columns()]
    assert (snapshots["event_timestamp"].dt.floor(grain) == snapshots["event_timestamp"]).all()
    assert_rows_match_brute_force(events, snapshots)


def test_generated_shop_snapshots_in_many_blocks_match_brute_force_recomputation():
    # The generator's events have real sessions, categories and funnels; tiny blocks on two threads.
    events = generate_events(users=40, days=30, seed=2, start="2024-01-01")
    end = pd.Timestamp("2024-01-25 13:00", tz="UTC")
    blocks = list(iter_user_features(events, grain="6h", end=end, block_events=200, threads=2))
    assert len(blocks) > 5
    snapshots = pd.concat(blocks, ignore_index=True)
    assert snapshots["event_timestamp"].max() == end.floor("6h")
    assert_rows_match_brute_force(events[events["event_time"] < end.floor("6h")], snapshots)


def test_distinct_counts_are_exact_not_sums_of_daily_distincts():
    # The same item on three days and a session over midnight count once.
    events = random_events(n=6, users=1, days=3)
    events["event_time"] = pd.to_datetime(
        [
            "2024-03-01 10:00",
            "2024-03-02 10:00",
            "2024-03-03 10:00",
            "2024-03-03 23:50",
            "2024-03-04 00:10",
            "2024-03-04 05:00",
        ],
        utc=True,
    )
    events["event_type"] = "view"
    events["item_id"] = [7, 7, 7, 8, 8, 9]
    events["category"] = ["a", "a", "a", "a", "b", "b"]
    events["session_id"] = ["s1", "s2", "s3", "s4", "s4", "s5"]
    row = build_user_features(events).set_index("event_timestamp").loc[pd.Timestamp("2024-03-05", tz="UTC")]
    assert (row["distinct_items_7d"], row["distinct_categories_7d"], row["sessions_7d"]) == (3, 2, 5)


@pytest.mark.parametrize("grain", ["1d", "6h"])
def test_sequences_match_brute_force_recomputation(grain: str):
    events = random_events(n=900)
    table = build_user_sequences(events, grain=grain)
    assert table.column_names == ["user_id", "event_timestamp", *sequence_columns()]
    frame = table.to_pandas()
    rng = np.random.default_rng(1)
    for i in rng.choice(len(frame), 30, replace=False):
        row = frame.iloc[i]
        expected = brute_force_sequence(events, int(row["user_id"]), row["event_timestamp"])
        for name, value in expected.items():
            assert list(row[name]) == value, (name, row["user_id"], row["event_timestamp"])


def test_sequences_are_capped_and_oldest_first():
    events = random_events(n=3000, users=2, days=20)
    frame = build_user_sequences(events).to_pandas()
    lengths = frame["seq_event_type"].map(len)
    assert lengths.max() == SEQUENCE_LENGTH and frame["last_queries"].map(len).max() == QUERY_COUNT
    gaps = frame["seq_seconds_since_prev"].iloc[-1]
    assert (np.asarray(gaps) >= 0).all(), "only a user's first event has no previous one"


def test_stable_ids():
    # Hashed ids never depend on the data set: pin a few so a change to the hashing fails loudly.
    assert category_id("electronics.smartphone") == category_id("electronics.smartphone") > 0
    assert category_id(None) == 0
    assert [event_type_id(t) for t in EVENT_TYPES] == [1, 2, 3, 4, 5, 6]
    assert price_bucket(np.array([np.nan, 0.0, 1.0, 100.0, 1e12])).tolist() == [0, 1, 2, 7, 15]


def test_realtime_rows_count_carts_per_day_and_continue_online_counts():
    events = random_events(n=4, users=1, days=1)
    events["event_time"] = pd.to_datetime(
        ["2024-03-01 10:00", "2024-03-01 11:00", "2024-03-01 12:00", "2024-03-02 01:00"], utc=True
    )
    events["event_type"] = ["cart", "view", "cart", "cart"]
    rows = realtime_rows(events)
    assert list(rows.columns) == ["user_id", "event_timestamp", *realtime_columns()]
    assert rows["cart_count_today"].tolist() == [1, 1, 2, 1]
    assert rows["last_event_type"].tolist() == ["cart", "view", "cart", "cart"]
    carried = realtime_rows(events.iloc[:3], carts_before=pd.Series({int(events["user_id"][0]): 5}))
    assert carried["cart_count_today"].tolist() == [6, 6, 7]


def test_snapshot_never_counts_events_at_or_after_its_timestamp():
    events = random_events()
    snapshots = build_user_features(events)
    last_event = events.groupby("user_id")["event_time"].max()
    first_snap = snapshots.groupby("user_id")["event_timestamp"].min()
    first_event = events.groupby("user_id")["event_time"].min()
    # The first snapshot is the midnight after the first event, so it sees that event and nothing later.
    assert (first_snap == first_event.dt.floor("D") + pd.Timedelta(days=1)).all()
    assert (snapshots["hours_since_last_event"] > 0).all()
    tail = pd.Timedelta(days=1 + ACTIVE_TAIL_DAYS)
    assert (snapshots.groupby("user_id")["event_timestamp"].max() <= last_event.dt.floor("D") + tail).all()


def test_end_bounds_the_snapshots_and_drops_later_events():
    events = random_events()
    end = pd.Timestamp("2024-03-20", tz="UTC")
    snapshots = build_user_features(events, end=end)
    assert snapshots["event_timestamp"].max() == end
    full = build_user_features(events)
    same = full[full["event_timestamp"] <= end].reset_index(drop=True)
    pd.testing.assert_frame_equal(snapshots.reset_index(drop=True), same, check_dtype=False)


@pytest.mark.parametrize(("grain", "end"), [("1d", None), ("6h", "2024-03-20 13:00"), ("1h", None)])
def test_blocks_of_users_and_threads_do_not_change_the_snapshots(grain: str, end: str | None):
    # Blocks of a handful of events split the users into many blocks (one user may fill several blocks'
    # worth); two threads finish them out of order. The oracle tests above check the single-block result.
    events = random_events(n=900)
    end_ts = None if end is None else pd.Timestamp(end, tz="UTC")
    whole = build_user_features(events, grain=grain, end=end_ts)
    blocks = list(iter_user_features(events, grain=grain, end=end_ts, block_events=40, threads=2))
    assert len(blocks) > 5
    pd.testing.assert_frame_equal(pd.concat(blocks, ignore_index=True), whole, check_exact=True)


def test_written_snapshots_stream_block_by_block_into_one_file(tmp_path):
    events = random_events(n=900)
    path = write_user_features(iter_user_features(events, block_events=100), tmp_path)
    assert not list(tmp_path.glob(".*.tmp"))
    pd.testing.assert_frame_equal(pd.read_parquet(path), build_user_features(events), check_exact=True)


def test_build_all_streams_blocks_of_users_into_the_same_files(tmp_path, monkeypatch):
    events = random_events(n=900)
    monkeypatch.setattr(build, "FRAME_BLOCK_EVENTS", 60)  # ~15 blocks of users
    written = build.build_all(events, tmp_path)
    pd.testing.assert_frame_equal(pd.read_parquet(written[ACTIVITY_VIEW]), build_user_features(events))
    assert pq.read_table(written[SEQUENCE_VIEW]).equals(build_user_sequences(events))
    pd.testing.assert_frame_equal(pd.read_parquet(written[REALTIME_VIEW]), realtime_rows(events))


def test_unknown_event_type_is_a_clear_error():
    events = random_events().astype({"event_type": object})
    events.loc[3, "event_type"] = "refund"
    with pytest.raises(ValueError, match="unknown event types.*refund"):
        build_user_features(events)


def test_no_events_is_a_clear_error():
    with pytest.raises(ValueError, match="no events"):
        build_user_features(random_events().iloc[:0])


def test_bad_grain_is_a_clear_error():
    with pytest.raises(ValueError, match="must divide a day"):
        parse_grain("7h")
