"""Per-user feature snapshots at a daily grain, point-in-time correct.

A snapshot stamped `T` (a midnight, UTC) summarises exactly the events with `event_time < T`. Feast's
point-in-time join picks, for a training row with cutoff `c`, the newest snapshot with `T <= c`, so no
feature can see an event after its row's cutoff.

Each user gets one snapshot per day from the day after their first event until `ACTIVE_TAIL_DAYS` after
their last event (later snapshots would only repeat zeros); past that the Feast view's TTL expires and the
user reads as "no recent activity".

Engine: pandas + numpy. Daily per-user aggregates come from one groupby; windowed sums are differences
of per-user cumulative sums on a dense day grid, so the cost is linear in events plus user-days.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from registry.events.schema import EVENT_TYPES

WINDOWS_DAYS = (1, 7, 30)
ACTIVE_TAIL_DAYS = 30
DAY = pd.Timedelta(days=1)
FEATURES_FILE = "user_features.parquet"


def feature_columns() -> list[str]:
    """Names of every aggregate feature, in a stable order (the Feast view declares the same names)."""
    counts = [f"{etype}_count_{w}d" for w in WINDOWS_DAYS for etype in EVENT_TYPES]
    return counts + [
        "spend_30d",
        "spend_total",
        "purchases_total",
        "active_days_30d",
        "view_to_cart_30d",
        "cart_to_purchase_30d",
        "hours_since_last_event",
        "hours_since_last_cart",
        "hours_since_last_purchase",
    ]


def _daily_aggregates(events: pd.DataFrame) -> pd.DataFrame:
    """One row per (user_id, day) with event counts per type, spend, and the last cart/purchase/event times."""
    day = events["event_time"].dt.floor("D")
    etype = events["event_type"].astype(str)
    counts = pd.crosstab([events["user_id"], day], etype).reindex(columns=list(EVENT_TYPES), fill_value=0)
    counts.index.names = ["user_id", "day"]
    is_purchase = etype == "purchase"
    quantity = events["quantity"].fillna(1).astype("float64")
    spend = (events["price"].fillna(0.0) * quantity).where(is_purchase, 0.0)
    keys = [events["user_id"], day]
    daily = counts.astype("int64")
    daily["spend"] = spend.groupby(keys).sum()
    daily["last_event"] = events["event_time"].groupby(keys).max()
    for kind in ("cart", "purchase"):
        daily[f"last_{kind}"] = events["event_time"].where(etype == kind).groupby(keys).max()
    return daily.reset_index()


def _dense_grid(daily: pd.DataFrame, end_day: pd.Timestamp) -> pd.DataFrame:
    """Every (user, day) from the user's first active day to min(last active day + tail, end_day)."""
    span = daily.groupby("user_id")["day"].agg(["min", "max"])
    last = (span["max"] + pd.Timedelta(days=ACTIVE_TAIL_DAYS)).clip(upper=end_day)
    lengths = ((last - span["min"]) // DAY).astype("int64").to_numpy() + 1
    users = np.repeat(span.index.to_numpy(), lengths)
    starts = np.repeat(span["min"].dt.tz_convert(None).to_numpy(), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    days = pd.DatetimeIndex(starts + offsets * np.timedelta64(1, "D")).tz_localize("UTC")
    grid = pd.DataFrame({"user_id": users, "day": days})
    return grid.merge(daily, on=["user_id", "day"], how="left")


def _window_sum(values: np.ndarray, group_start: np.ndarray, window: int) -> np.ndarray:
    """Sum of the last `window` rows (this row included) within each user's contiguous block of rows."""
    csum = np.cumsum(values, axis=0)
    before_block = np.where((group_start > 0)[:, None], csum[np.maximum(group_start - 1, 0)], 0.0)
    block_csum = csum - before_block  # running sum that restarts at each user's first row
    back = np.arange(len(values)) - window
    inside = back >= group_start  # the row `window` back still belongs to the same user
    prior = np.where(inside[:, None], block_csum[np.maximum(back, 0)], 0.0)
    return np.rint((block_csum - prior) * 1e6) / 1e6  # drop float noise from the differences


def build_user_features(events: pd.DataFrame, *, end: pd.Timestamp | None = None) -> pd.DataFrame:
    """Daily per-user snapshots from canonical events.

    Returns columns `user_id`, `event_timestamp` (the snapshot time T) and `feature_columns()`.
    `end` (default: the day after the last event) bounds the last snapshot.
    """
    if events.empty:
        raise ValueError("no events to build features from; generate or import events first")
    if end is not None:
        end = pd.Timestamp(end).tz_convert("UTC").floor("D")
        events = events[events["event_time"] < end]
        if events.empty:
            raise ValueError(f"no events before end={end}; choose a later end")
    daily = _daily_aggregates(events)
    last_day = daily["day"].max() if end is None else end - DAY
    grid = _dense_grid(daily, last_day)
    grid = grid.sort_values(["user_id", "day"], kind="stable").reset_index(drop=True)

    user_codes = grid["user_id"].to_numpy()
    new_block = np.r_[True, user_codes[1:] != user_codes[:-1]]
    group_start = np.maximum.accumulate(np.where(new_block, np.arange(len(grid)), 0))

    per_day = grid[list(EVENT_TYPES)].fillna(0).to_numpy(dtype="float64")
    out = pd.DataFrame({"user_id": grid["user_id"], "event_timestamp": grid["day"] + DAY})
    for window in WINDOWS_DAYS:
        sums = _window_sum(per_day, group_start, window)
        for j, etype in enumerate(EVENT_TYPES):
            out[f"{etype}_count_{window}d"] = sums[:, j].astype("int64")

    spend = grid["spend"].fillna(0.0).to_numpy()[:, None]
    out["spend_30d"] = _window_sum(spend, group_start, 30)[:, 0]
    out["spend_total"] = _window_sum(spend, group_start, len(grid) + 1)[:, 0]
    purchases = per_day[:, [EVENT_TYPES.index("purchase")]]
    out["purchases_total"] = _window_sum(purchases, group_start, len(grid) + 1)[:, 0].astype("int64")
    active = (per_day.sum(axis=1, keepdims=True) > 0).astype("float64")
    out["active_days_30d"] = _window_sum(active, group_start, 30)[:, 0].astype("int64")
    out["view_to_cart_30d"] = _ratio(out["cart_count_30d"], out["view_count_30d"])
    out["cart_to_purchase_30d"] = _ratio(out["purchase_count_30d"], out["cart_count_30d"])

    for column, source in (
        ("hours_since_last_event", "last_event"),
        ("hours_since_last_cart", "last_cart"),
        ("hours_since_last_purchase", "last_purchase"),
    ):
        # Carry the last time forward within each user; never across users.
        last_seen = grid[source].groupby(grid["user_id"]).ffill()
        out[column] = (out["event_timestamp"] - last_seen).dt.total_seconds() / 3600.0
    return out


def _ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    """numerator / denominator, 0 where the denominator is 0 (no views means no conversion to measure)."""
    den = denominator.to_numpy(dtype="float64")
    return pd.Series(
        np.divide(numerator.to_numpy(dtype="float64"), den, out=np.zeros_like(den), where=den > 0)
    )


def write_user_features(features: pd.DataFrame, features_dir: Path) -> Path:
    """Write snapshots atomically to `<features_dir>/user_features.parquet` (the Feast FileSource)."""
    features_dir.mkdir(parents=True, exist_ok=True)
    target = features_dir / FEATURES_FILE
    tmp = features_dir / f".{FEATURES_FILE}.tmp"
    pq.write_table(pa.Table.from_pandas(features, preserve_index=False), tmp)
    tmp.replace(target)
    return target
