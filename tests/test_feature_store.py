"""A real Feast store on the embedded default: apply, materialize, push, read online and offline."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from helpers import random_events

from registry import flow as jobs
from registry.events.schema import write_events
from registry.features import contract, feast_store, push_events, read_online
from registry.features.build import build_all
from registry.features.training_set import LabelSpec, build_training_set, compute_labels, entity_rows
from registry.settings import Settings

SERVICES = (
    "purchase_v1",
    "purchase_seq_v1",
    "purchase_rt_v1",
    "purchase_lifetime_v1",
    "purchase_lifetime_seq_v1",
)


def build_and_apply(settings: Settings, events: pd.DataFrame) -> None:
    write_events(events, settings.events_dir)
    build_all(events, settings.features_dir)
    feast_store.apply(settings)


@pytest.fixture
def applied(settings: Settings):
    events = random_events(n=1500, users=30, days=60)
    build_and_apply(settings, events)
    snapshots = pd.read_parquet(settings.features_dir / contract.FEATURES_FILE)
    return settings, events, snapshots


@pytest.fixture
def materialized(applied):
    """A store of its own, for tests that write to it (push)."""
    settings, events, snapshots = applied
    feast_store.materialize(settings, start=events["event_time"].min().floor("D").to_pydatetime())
    return applied


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One applied and materialized store shared by the read-only tests (apply + materialize cost seconds)."""
    settings = Settings.from_env(home=tmp_path_factory.mktemp("shared") / "home").with_(
        feast_profile="", feature_repo=Settings.from_env().feature_repo
    )
    events = random_events(n=1500, users=30, days=60)
    build_and_apply(settings, events)
    feast_store.materialize(settings, start=events["event_time"].min().floor("D").to_pydatetime())
    return settings, events, pd.read_parquet(settings.features_dir / contract.FEATURES_FILE)


def online(settings: Settings, service: str, users: list[int], **extra) -> pd.DataFrame:
    store = feast_store.open_store(settings)
    rows = [{"user_id": u, **extra} for u in users]
    return store.get_online_features(features=store.get_feature_service(service), entity_rows=rows).to_df()


def test_online_features_are_the_newest_snapshot(shared):
    settings, events, snapshots = shared
    users = [1, 2, 3]
    got = online(settings, "purchase_v1", users).set_index("user_id")
    newest = snapshots.sort_values("event_timestamp").groupby("user_id").tail(1).set_index("user_id")
    for u in users:
        for name in ("view_count_30d", "distinct_items_30d", "sessions_7d", "search_count_1h"):
            assert got.loc[u, name] == newest.loc[u, name], name
        assert got.loc[u, "spend_total"] == pytest.approx(newest.loc[u, "spend_total"])


def test_sequence_lists_round_trip_online_and_offline(shared):
    settings, events, _ = shared
    sequences = pd.read_parquet(settings.features_dir / contract.SEQUENCES_FILE)
    newest = sequences.sort_values("event_timestamp").groupby("user_id").tail(1).set_index("user_id")
    users = [1, 2, 3, 4]
    got = online(settings, "purchase_seq_v1", users).set_index("user_id")
    for u in users:
        for name in contract.sequence_columns():
            assert list(got.loc[u, name]) == list(newest.loc[u, name]), (u, name)
    # Offline: the newest sequence row at or before each cutoff, lists intact.
    cutoff = pd.Timestamp("2024-04-10 08:00", tz="UTC")
    store = feast_store.open_store(settings)
    frame = build_training_set(
        store, events, service_name="purchase_seq_v1", cutoffs=[cutoff], horizon_days=7
    )
    asof = sequences[sequences["event_timestamp"] <= cutoff].sort_values("event_timestamp")
    asof = asof.groupby("user_id").tail(1).set_index("user_id")
    checked = 0
    for _, row in frame.iterrows():
        if row["user_id"] in asof.index and asof.loc[
            row["user_id"], "event_timestamp"
        ] > cutoff - pd.Timedelta(days=30):
            assert list(row["last_queries"]) == list(asof.loc[row["user_id"], "last_queries"])
            assert list(row["seq_category"]) == list(asof.loc[row["user_id"], "seq_category"])
            checked += 1
    assert checked > 10


def test_unknown_user_reads_as_missing_online(shared):
    settings, _, _ = shared
    row = online(settings, "purchase_v1", [987654])
    assert row["view_count_30d"].isna().all()


def test_pushed_cart_changes_online_features_at_once(materialized):
    settings, events, _ = materialized
    user = 5
    before = online(settings, "purchase_rt_v1", [user], request_ts=time.time()).iloc[0]
    now = pd.Timestamp.now(tz="UTC").floor("s")
    cart = pd.DataFrame({"event_time": [now], "user_id": [user], "event_type": ["cart"], "item_id": [3]})
    result = push_events(settings, cart)
    assert (result.events, result.users_pushed) == (1, 1)
    after = online(settings, "purchase_rt_v1", [user], request_ts=now.timestamp() + 1800).iloc[0]
    assert before["last_event_at"] < now.timestamp()
    assert after["last_event_type"] == "cart" and after["cart_count_today"] == 1
    assert after["last_event_at"] == pytest.approx(now.timestamp())
    assert after["hours_since_last_event_at_request"] == pytest.approx(0.5)
    # A second cart the same day continues the count held online; an old event does not roll state back.
    push_events(settings, cart.assign(event_time=now + pd.Timedelta(seconds=1)))
    push_events(settings, cart.assign(event_time=now - pd.Timedelta(days=3), event_type="view"))
    again = online(settings, "purchase_rt_v1", [user], request_ts=time.time()).iloc[0]
    assert (again["last_event_type"], again["cart_count_today"]) == ("cart", 2)
    assert len(list(settings.events_dir.glob("date=*/push-*.parquet"))) == 3, "every push is kept"


def test_online_read_reports_ages_and_masks_expired_views(shared):
    settings, _, snapshots = shared
    store = feast_store.open_store(settings)
    newest = snapshots.groupby("user_id")["event_timestamp"].max()
    now = newest.loc[1].timestamp() + 3600  # one hour after user 1's newest snapshot
    fresh = read_online(store, "purchase_seq_v1", [1, 987654], now=now)
    assert set(fresh.event_time) == {"user_activity", "user_sequence"}
    assert fresh.ages[0] == pytest.approx(3600.0) and np.isnan(fresh.ages[1])  # 987654: nothing stored
    assert not fresh.stale.any() and fresh.frame().loc[0, "view_count_30d"] is not None
    # Three days on, both views are past their TTL (the sequence's covers the snapshot tail exactly), so
    # the values read as missing although Feast still returns them.
    late = read_online(store, "purchase_seq_v1", [1], now=now + 3 * 86400)
    assert late.expired["user_activity"][0] and late.expired["user_sequence"][0] and late.stale[0]
    assert late.frame().loc[0, "view_count_30d"] is None and late.frame().loc[0, "seq_event_type"] is None
    assert late.ages[0] == pytest.approx(3600.0 + 3 * 86400)


def test_an_expired_view_blanks_only_its_own_features_in_training_sets(shared):
    """Serving masks an expired view and keeps the others; training must see rows the same way, although
    Feast's file offline store drops a whole row when one view of the request has nothing in its TTL."""
    settings, events, _ = shared
    store = feast_store.open_store(settings)
    last = events["event_time"].max().floor("D")
    cutoffs = [last - pd.Timedelta(days=d, hours=12) for d in (1, 5, 20)]
    alone = build_training_set(store, events, service_name="purchase_v1", cutoffs=cutoffs, horizon_days=7)
    activity = [c for c in contract.feature_columns() if c in alone.columns]
    realtime = contract.realtime_columns()
    for service in ("purchase_seq_v1", "purchase_rt_v1"):
        frame = build_training_set(store, events, service_name=service, cutoffs=cutoffs, horizon_days=7)
        pd.testing.assert_frame_equal(frame[activity], alone[activity])
    # The rows that matter exist: aggregates present while the day-TTL real-time view has expired.
    expired = frame[realtime[0]].isna() & alone[activity[0]].notna()
    assert expired.sum() >= 3, "the fixture needs users whose real-time state expired before their aggregates"


def test_training_set_uses_no_event_after_its_cutoff(applied, tmp_path):
    """Rebuilding every view from only the events up to a cutoff must give the very same training rows.

    Any feature that used a later event (aggregate, sequence, query text, real-time or request-time) would
    differ between the two stores, for every FeatureService.
    """
    settings, events, _ = applied
    cutoffs = [pd.Timestamp("2024-03-20 15:30", tz="UTC"), pd.Timestamp("2024-04-10 08:00", tz="UTC")]
    store = feast_store.open_store(settings)
    full = {
        name: build_training_set(store, events, service_name=name, cutoffs=cutoffs, horizon_days=7)
        for name in SERVICES
    }
    assert len(full["purchase_v1"]) == len(entity_rows(events, cutoffs))
    for i, cutoff in enumerate(cutoffs):
        truncated_settings = Settings.from_env(home=tmp_path / f"cut{i}")
        truncated = events[events["event_time"] <= cutoff]
        build_and_apply(truncated_settings, truncated)
        truncated_store = feast_store.open_store(truncated_settings)
        for service, frame in full.items():
            past = build_training_set(
                truncated_store, truncated, service_name=service, cutoffs=[cutoff], horizon_days=7
            )
            mine = frame[frame["event_timestamp"] == cutoff].reset_index(drop=True)
            assert len(mine) == len(past) > 5
            features = [
                c
                for c in mine.columns
                if c not in ("user_id", "event_timestamp") and not c.startswith("label_")
            ]
            for name in features:
                a, b = [_comparable(v) for v in mine[name]], [_comparable(v) for v in past[name]]
                assert a == b, f"{service}:{name} at {cutoff} used events after the cutoff"
    # The aggregates also match a brute-force count of the events before the snapshot.
    for _, row in full["purchase_v1"].iterrows():
        cutoff = row["event_timestamp"]
        visible = events[(events["user_id"] == row["user_id"]) & (events["event_time"] < cutoff.floor("D"))]
        recent = visible[visible["event_time"] >= cutoff.floor("D") - pd.Timedelta(days=30)]
        if not pd.isna(row["view_count_30d"]):
            assert row["view_count_30d"] == (recent["event_type"] == "view").sum()


def _comparable(value: object) -> object:
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(np.asarray(value).tolist())
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    return round(float(value), 6) if isinstance(value, (float, np.floating)) else value


def test_labels_come_strictly_after_the_cutoff_within_the_horizon():
    """Each built-in head computes its own label from the window core hands it, and from nothing else."""
    from plugins.next_category import NextCategoryHead
    from plugins.purchase import PurchaseHead
    from plugins.spend import SpendHead

    events = random_events(n=800, users=10, days=40)
    cutoffs = [pd.Timestamp("2024-03-15", tz="UTC"), pd.Timestamp("2024-03-25", tz="UTC")]
    rows = entity_rows(events, cutoffs)
    got = rows.assign(
        **{
            head.label: compute_labels(events, rows, 5, LabelSpec(head.label, head.compute_label)).to_numpy()
            for head in (PurchaseHead, SpendHead, NextCategoryHead)
        }
    )
    for cutoff in cutoffs:
        window = events[
            (events["event_type"] == "purchase")
            & (events["event_time"] > cutoff)
            & (events["event_time"] <= cutoff + pd.Timedelta(days=5))
        ].sort_values("event_time")
        first_category = window.dropna(subset=["category"]).groupby("user_id")["category"].first()
        value = (window["price"].fillna(0) * window["quantity"].fillna(1)).groupby(window["user_id"]).sum()
        for _, row in got[got["event_timestamp"] == cutoff].iterrows():
            user = row["user_id"]
            assert row["label_purchase"] == int(user in set(window["user_id"]))
            assert row["label_spend"] == pytest.approx(value.get(user, 0.0))
            expected = first_category.get(user)
            assert (pd.isna(row["label_next_category"]) and expected is None) or row[
                "label_next_category"
            ] == expected
    assert got["label_next_category"].notna().any() and got["label_next_category"].isna().any()


def test_missing_profile_is_a_clear_error(settings: Settings):
    with pytest.raises(feast_store.FeatureRepoError, match="SHOPSCORE_FEAST_PROFILE"):
        feast_store.repo_config(settings.with_(feast_profile="nope"))


def test_cli_build_apply_materialize_and_push(settings: Settings, tmp_path):
    from click.testing import CliRunner

    from registry.cli import main

    write_events(random_events(n=400, users=8, days=20), settings.events_dir)
    runner = CliRunner()
    for args in (["features", "build", "--grain", "6h"], ["features", "apply"], ["features", "materialize"]):
        result = runner.invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    snapshots = pd.read_parquet(settings.features_dir / contract.FEATURES_FILE)
    assert (
        snapshots["event_timestamp"].dt.hour.isin([0, 6, 12, 18]).all()
        and (snapshots["event_timestamp"].dt.hour > 0).any()
    )
    now = pd.Timestamp.now(tz="UTC").floor("s")
    new = tmp_path / "new.csv"
    pd.DataFrame({"event_time": [now.isoformat()], "user_id": [3], "event_type": ["cart"]}).to_csv(
        new, index=False
    )
    pushed = runner.invoke(main, ["events", "push", str(new), "--json"], catch_exceptions=False)
    assert pushed.exit_code == 0 and '"users_pushed": 1' in pushed.output, pushed.output
    assert online(settings, "purchase_rt_v1", [3], request_ts=now.timestamp()).loc[0, "cart_count_today"] == 1
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"user_id": [3], "event_type": ["cart"]}).to_csv(bad, index=False)
    refused = runner.invoke(main, ["events", "push", str(bad)])
    assert refused.exit_code == 2 and "event_time" in refused.output
    backfill = runner.invoke(
        main, ["features", "materialize", "--start", "2024-03-01"], catch_exceptions=False
    )
    assert backfill.exit_code == 0, backfill.output


def test_a_plain_materialize_after_a_rebuild_serves_the_rebuilt_values(settings: Settings):
    first = random_events(n=1500, users=30, days=60, seed=3)
    build_and_apply(settings, first)
    assert len(jobs.materialize_features(settings)) > 0  # the first run loads every view
    assert jobs.materialize_features(settings) == []  # nothing rebuilt: incremental only
    # Other events over the same days (a re-import, a fixed importer): every user's values change.
    for part in settings.events_dir.glob("date=*/*.parquet"):
        part.unlink()
    rebuilt = random_events(n=1500, users=30, days=60, seed=4)
    write_events(rebuilt, settings.events_dir)
    jobs.build_features(settings)
    assert "user_activity" in jobs.materialize_features(settings)
    snapshots = pd.read_parquet(settings.features_dir / contract.FEATURES_FILE)
    newest = snapshots.sort_values("event_timestamp").groupby("user_id").tail(1).set_index("user_id")
    users = sorted(newest.index)
    got = online(settings, "purchase_v1", users).set_index("user_id")
    columns = ["view_count_30d", "purchase_count_30d", "distinct_items_30d", "sessions_7d"]
    assert got.loc[users, columns].astype("int64").equals(newest.loc[users, columns].astype("int64"))
