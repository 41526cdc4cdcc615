"""Lifetime state per user: the whole history, for users who may have been quiet for months or years.

`user_activity` keeps a user alive only `ACTIVE_TAIL_DAYS` after their last event and its windows stop at 30
days, which is right for a clickstream but loses the classic buy-till-you-die signals (recency, frequency,
customer age, spend over the whole history) of shops whose customers buy a few times a year. This module
builds the rows of `user_lifetime.parquet` (view `user_lifetime`, feature_repo/users.py; files.py writes
them): one row per (user, event time), stamped at the event's own time, holding the state after every
event up to and including it. The state only changes when the user acts, so the file stays as small as
the event log's distinct (user, time) pairs, and the view's long TTL carries it over any quiet spell.

A row stamped `t` sees exactly the events at or before `t` (the convention of `user_realtime`); labels
(registry/features/training_set.py) come from events strictly after a cutoff, so the two never overlap and
no event between them is lost, whatever the time of day of the events (CDNOW's are all at midnight).

Quantities relative to "now" (days since the last purchase, purchases in the last 90 days...) are not
stored: the on-demand view `user_lifetime_at_request` computes them from these timestamps and the
request's `request_ts` (the cutoff, in training), so they are exact at any moment, not as of a snapshot.
Windows ("purchases in the 90 days before the request") come from `user_lifetime_lags.parquet`: the same
totals stamped `days` later, so a point-in-time lookup returns the totals as of `days` ago and the window is
a difference (exact at any request time). Arrays of the last purchase times would do the same, but Feast's
file offline store tokenizes object columns by pickling them cell by cell: one CDNOW retrieval took ~50 s
with two such columns instead of ~2 s.

The names (columns, lags, the request-time outputs and their descriptions) are the contract's
(registry/features/contract.py); this module holds the computation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from registry.features.contract import (
    JOIN_KEY,
    LAG_DAYS,
    LAGGED,
    TIMESTAMP_FIELD,
    lag_visible_at,
    lagged_columns,
    lifetime_columns,
    request_columns,
)
from registry.features.ordering import user_order

DAY_NS = 86_400 * 10**9


def _running_distinct_days(codes: np.ndarray, day: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(N,) per event: distinct UTC days among the user's masked events so far (events sorted by user, time)."""
    new_day = mask.copy()
    # A masked event starts a new day unless the user's previous masked event fell on the same day.
    idx = np.flatnonzero(mask)
    same = (codes[idx][1:] == codes[idx][:-1]) & (day[idx][1:] == day[idx][:-1])
    new_day[idx[1:][same]] = False
    return _running_sum(codes, new_day.astype("int64"))


def _running_sum(codes: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(N,) per event: the sum of `values` over the user's events so far (events sorted by user)."""
    total = np.cumsum(values)
    first = np.searchsorted(codes, codes, side="left")
    before = np.r_[np.zeros(1, total.dtype), total][first]
    return total - before


def _carry_time(codes: np.ndarray, t_ns: np.ndarray, mask: np.ndarray, newest: bool) -> np.ndarray:
    """(N,) per event: the time (unix seconds) of the user's newest (or first) masked event so far; NaN if none."""
    index = np.where(mask, np.arange(len(codes)), -1)
    if newest:
        carried = np.maximum.accumulate(index)
    else:
        # The first masked event of the user: the smallest masked index in the user's block, if not after.
        first_masked = pd.Series(np.where(mask, np.arange(len(codes)), np.iinfo("int64").max)).groupby(codes)
        carried = first_masked.transform("min").to_numpy()
        carried = np.where(carried <= np.arange(len(codes)), carried, -1)
    block_start = np.searchsorted(codes, codes, side="left")
    seen = carried >= block_start  # never carry a time across users
    return np.where(seen, t_ns[np.maximum(carried, 0)] / 1e9, np.nan)


def _last_purchase_value(
    codes: np.ndarray, t_ns: np.ndarray, value: np.ndarray, is_purchase: np.ndarray
) -> np.ndarray:
    """(N,) per event: the value of the user's newest purchase instant so far (purchases at one instant
    summed: one order); NaN if none."""
    instant = pd.Series(np.where(is_purchase, value, 0.0)).groupby([codes, t_ns]).transform("sum").to_numpy()
    index = np.maximum.accumulate(np.where(is_purchase, np.arange(len(codes)), -1))
    seen = index >= np.searchsorted(codes, codes, side="left")
    return np.where(seen, instant[np.maximum(index, 0)], np.nan)


def build_user_lifetime(events: pd.DataFrame) -> pa.Table:
    """Lifetime state after each (user, event time): columns `user_id`, `event_timestamp` and
    `lifetime_columns()`. Several events of a user at the same instant give one row (the state after all)."""
    if events.empty:
        raise ValueError("no events to build lifetime features from; generate or import events first")
    ordered, codes, t_ns = user_order(events)
    is_purchase = (ordered["event_type"] == "purchase").to_numpy()
    price = ordered["price"].to_numpy(dtype="float64", na_value=np.nan)
    quantity = ordered["quantity"].to_numpy(dtype="float64", na_value=np.nan)
    quantity = np.where(np.isnan(quantity), 1.0, quantity)
    value = np.where(is_purchase, np.nan_to_num(price) * quantity, 0.0)
    day = t_ns // DAY_NS
    everything = np.ones(len(ordered), bool)

    # The state after the last event of each (user, instant).
    last_of_instant = np.r_[(codes[1:] != codes[:-1]) | (t_ns[1:] != t_ns[:-1]), True]
    rows = np.flatnonzero(last_of_instant)

    state = {
        "first_event_at": _carry_time(codes, t_ns, everything, newest=False),
        "last_event_at": t_ns / 1e9,
        "first_purchase_at": _carry_time(codes, t_ns, is_purchase, newest=False),
        "last_purchase_at": _carry_time(codes, t_ns, is_purchase, newest=True),
        "events_total": _running_sum(codes, np.ones(len(ordered), "int64")),
        "active_days_total": _running_distinct_days(codes, day, everything),
        "purchases_total": _running_sum(codes, is_purchase.astype("int64")),
        "purchase_days_total": _running_distinct_days(codes, day, is_purchase),
        "items_total": _running_sum(codes, np.where(is_purchase, quantity, 0.0)),
        "spend_total": np.rint(_running_sum(codes, value) * 1e6) / 1e6,  # a long running sum's noise off
        "last_purchase_value": _last_purchase_value(codes, t_ns, value, is_purchase),
    }
    columns: dict[str, pa.Array] = {
        JOIN_KEY: pa.array(ordered["user_id"].to_numpy()[rows], type=pa.int64()),
        TIMESTAMP_FIELD: pa.array(t_ns[rows], type=pa.timestamp("ns", tz="UTC")),
    }
    for name, values in state.items():
        columns[name] = pa.array(values[rows], from_pandas=True)
    return pa.table({name: columns[name] for name in [JOIN_KEY, TIMESTAMP_FIELD, *lifetime_columns()]})


def build_lifetime_lags(lifetime: pa.Table) -> pa.Table:
    """The lifetime totals again, each row also stamped `days` later (column `visible_at_<days>d`) and named
    `<total>_<days>d_ago`, for every lag in LAG_DAYS.

    Feast's point-in-time join of a view on `visible_at_<days>d` then returns, at a cutoff c, the totals as
    of c - days: the totals in any window (c - days, c] are an exact difference of two lookups, with no
    per-user arrays and no snapshot per quiet day.
    """
    frame = lifetime.select([JOIN_KEY, TIMESTAMP_FIELD, *LAGGED]).to_pandas()
    # Each user also gets a row of zeros visible from their first event: Feast's file offline store drops
    # an entity row that one of a service's views has nothing for, so "no purchases that long ago" must be
    # a row, not a gap.
    first = frame.groupby(JOIN_KEY, sort=False).head(1)
    zeros = first.assign(**{name: 0 for name in LAGGED}, shift=False)
    frame = pd.concat([zeros, frame.assign(shift=True)], ignore_index=True)
    columns: dict[str, pa.Array] = {
        JOIN_KEY: pa.array(frame[JOIN_KEY]),
        TIMESTAMP_FIELD: pa.array(frame[TIMESTAMP_FIELD]),
    }
    for days in LAG_DAYS:
        delay = np.where(frame["shift"], np.timedelta64(days, "D"), np.timedelta64(0, "D"))
        columns[lag_visible_at(days)] = pa.array(frame[TIMESTAMP_FIELD] + delay)
        for name, lagged in zip(LAGGED, lagged_columns(days), strict=True):
            columns[lagged] = pa.array(frame[name].astype(lifetime.schema.field(name).type.to_pandas_dtype()))
    return pa.table(columns)


def lifetime_at_request(inputs: dict[str, list], request_ts: list[float | None]) -> dict[str, list]:
    """The request-time features of `user_lifetime_at_request`, as columns of Python lists (Feast python mode).

    `inputs` holds `user_lifetime` columns (None where the user has no state yet). Kept here, not in the
    feature repo, so the formula has one home that tests and the repo share.
    """
    out: dict[str, list] = {name: [] for name in request_columns()}
    for i, now in enumerate(request_ts):
        row = {name: inputs[name][i] for name in REQUEST_INPUTS}
        for name, value in _request_row(row, now).items():
            out[name].append(value)
    return out


REQUEST_INPUTS = (
    "first_event_at",
    "last_event_at",
    "first_purchase_at",
    "last_purchase_at",
    "purchases_total",
    "purchase_days_total",
    "spend_total",
    *(lagged for days in LAG_DAYS for lagged in lagged_columns(days)),
)


MISSING = float("nan")  # Feast infers an output's type from a sample call, and None has no type


def _days(later: float | None, earlier: float | None) -> float:
    if later is None or earlier is None or _absent(later) or _absent(earlier):
        return MISSING
    return (later - earlier) / 86_400.0


def _absent(value: object) -> bool:
    return value is None or value != value  # None or NaN


def _request_row(row: dict, now: float | None) -> dict[str, float]:
    if _absent(now) or _absent(row["first_event_at"]):
        return dict.fromkeys(request_columns(), MISSING)
    purchase_days = row["purchase_days_total"] or 0
    span = _days(row["last_purchase_at"], row["first_purchase_at"])
    tenure = _days(now, row["first_event_at"])
    out: dict[str, float] = {
        "days_since_first_event": tenure,
        "days_since_last_event": _days(now, row["last_event_at"]),
        "days_since_first_purchase": _days(now, row["first_purchase_at"]),
        "days_since_last_purchase": _days(now, row["last_purchase_at"]),
        "purchase_span_days": span,
        "mean_days_between_purchase_days": span / (purchase_days - 1) if purchase_days > 1 else MISSING,
        # At least one day of tenure, so a first-day customer does not read as an infinite rate.
        "purchase_days_per_30d": 30.0 * purchase_days / max(tenure, 1.0),
        "mean_purchase_value": (row["spend_total"] / row["purchases_total"])
        if row["purchases_total"]
        else MISSING,
    }
    mean_gap = out["mean_days_between_purchase_days"]
    overdue = out["days_since_last_purchase"] / mean_gap if mean_gap > 0 else MISSING  # NaN > 0 is False
    out["days_since_last_purchase_per_mean_gap"] = overdue
    for days in LAG_DAYS:
        for name, lagged in zip(LAGGED, lagged_columns(days), strict=True):
            before = row[lagged]  # absent: no event that long ago, so the whole total is inside the window
            window = (row[name] or 0) - (0 if _absent(before) else before)
            out[f"{name.removesuffix('_total')}_last_{days}d"] = float(window)
    return out
