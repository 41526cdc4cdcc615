"""Push new events into the `user_realtime` view so a user's online features change at once.

`push_events(settings, frame)` turns canonical events into the view's state (last event type and time,
carts so far that UTC day), continuing the counts already online, and pushes the newest state per user
through the `user_realtime_push` PushSource. The events are also written to the workspace event store, so
the next `shopscore features build` keeps them in the offline history and every other view.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from feast.data_source import PushMode

from registry.events.schema import conform, write_events
from registry.features.contract import JOIN_KEY, REALTIME_PUSH_SOURCE, REALTIME_VIEW, TIMESTAMP_FIELD
from registry.features.feast_store import open_store
from registry.features.realtime import realtime_rows
from registry.settings import Settings


@dataclass(frozen=True)
class PushResult:
    events: int
    users_pushed: int
    users_skipped: int  # their pushed events were older than the state already online (late arrivals)


def read_event_file(path: Path) -> pd.DataFrame:
    """A CSV or parquet file of canonical events (see registry/events/schema.py)."""
    if not path.is_file():
        raise FileNotFoundError(
            f"event file {path} not found; pass a CSV or parquet file of canonical events"
        )
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path)
    raise ValueError(f"event file {path} is neither .csv nor .parquet; convert it to one of those")


def _online_state(store, user_ids: list[int]) -> pd.DataFrame:
    refs = [f"{REALTIME_VIEW}:last_event_at", f"{REALTIME_VIEW}:cart_count_today"]
    state = store.get_online_features(features=refs, entity_rows=[{JOIN_KEY: u} for u in user_ids]).to_df()
    return state.set_index(JOIN_KEY)


def push_events(settings: Settings, frame: pd.DataFrame) -> PushResult:
    """Push canonical events to the online `user_realtime` view and keep them in the event store."""
    events = conform(frame)
    if events.empty:
        return PushResult(0, 0, 0)
    store = open_store(settings)
    users = sorted(int(u) for u in events["user_id"].unique())
    online = _online_state(store, users)
    first_time = events.groupby("user_id")["event_time"].min()
    online_at = pd.to_datetime(online["last_event_at"], unit="s", utc=True)
    # A user's cart count continues from the online one when that state is from the same UTC day.
    same_day = online_at.notna() & (online_at.dt.floor("D") == first_time.reindex(online.index).dt.floor("D"))
    carts_before = online.loc[same_day, "cart_count_today"].astype("int64")
    rows = realtime_rows(events, carts_before=carts_before)
    newest = rows.groupby(JOIN_KEY).tail(1).set_index(JOIN_KEY)
    # Never move online state backwards: events older than what is online only go to the event store.
    behind = online_at.reindex(newest.index)
    fresh = newest[behind.isna() | (newest[TIMESTAMP_FIELD] > behind)].reset_index()
    if not fresh.empty:
        store.push(REALTIME_PUSH_SOURCE, fresh, to=PushMode.ONLINE)
    digest = hashlib.sha256(pd.util.hash_pandas_object(events, index=False).to_numpy().tobytes()).hexdigest()
    write_events(events, settings.events_dir, part_name=f"push-{digest[:16]}")
    return PushResult(len(events), len(fresh), len(newest) - len(fresh))
