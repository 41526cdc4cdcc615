"""How every feature builder reads the canonical events: times as int64 nanoseconds, the events bounded by
an end, sorted by (user, time), and split into blocks of users.

Shared by snapshots.py, sequences.py, realtime.py, lifetime.py and build.py, so none of them imports
another for these.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd


def _ns(times: pd.Series) -> np.ndarray:
    """UTC timestamps as int64 nanoseconds since the epoch (whatever unit the column was stored in)."""
    return pd.DatetimeIndex(times).tz_convert("UTC").as_unit("ns").asi8


def event_times_ns(events: pd.DataFrame) -> np.ndarray:
    return _ns(events["event_time"])


def stable_order(key: np.ndarray) -> np.ndarray:
    """np.argsort(key, kind="stable") for non-negative integers, in linear time: numpy's stable sort is
    a radix sort for 8- and 16-bit types, so sort by each 16-bit digit in turn, least significant first
    (one 8-bit pass for keys below 256: a 16-bit pass costs a 65,536-entry histogram)."""
    top = int(key.max(initial=0))
    if top < 256:
        return np.argsort(key.astype(np.uint8), kind="stable")
    order, shift = np.argsort((key & 0xFFFF).astype(np.uint16), kind="stable"), 0
    while top >> (shift := shift + 16):
        order = order[np.argsort(((key[order] >> shift) & 0xFFFF).astype(np.uint16), kind="stable")]
    return order


def bounded(
    events: pd.DataFrame, end: pd.Timestamp | None, step: pd.Timedelta
) -> tuple[pd.DataFrame, int | None]:
    """The events before `end` (floored to the step; all of them when None) and the last step index whose
    snapshot is `end` (None: no bound); a clear error when nothing is left."""
    if events.empty:
        raise ValueError("no events to build features from; generate or import events first")
    if end is None:
        return events, None
    end = pd.Timestamp(end).tz_convert("UTC").floor(step)
    events = events[events["event_time"] < end]
    if events.empty:
        raise ValueError(f"no events before end={end}; choose a later end")
    return events, end.value // step.value - 1  # the last step whose snapshot (at its end) is `end`


def user_blocks(user: np.ndarray, n_users: int, block_events: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """Consecutive ranges of user codes holding about `block_events` events each: (first, stop, event index).

    A user's snapshots depend on that user's events only, so each block is computed alone. Stable radix
    sorts (block number, then user within the block) group the events and keep each user's in time order.
    """
    counts = np.bincount(user, minlength=n_users)
    block_of_user = (np.cumsum(counts) - counts) // max(block_events, 1)
    block_of_user = np.r_[0, np.cumsum(np.diff(block_of_user) > 0)]  # number the blocks 0, 1, 2, ...
    order = stable_order(block_of_user[user])
    bounds = np.r_[0, np.cumsum(np.bincount(block_of_user[user]))]
    first_user = np.r_[0, np.flatnonzero(np.diff(block_of_user)) + 1, n_users]
    for b in range(len(bounds) - 1):
        first, index = first_user[b], order[bounds[b] : bounds[b + 1]]
        # Within the block, group by user (time order kept): the layout snapshots._distinct_in_windows needs.
        yield int(first), int(first_user[b + 1]), index[stable_order(user[index] - first)]


def user_order(events: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Events sorted by (user, time), with their user codes and times (int64 ns)."""
    ordered = events.sort_values(["user_id", "event_time"], kind="stable").reset_index(drop=True)
    codes, _ = pd.factorize(ordered["user_id"].to_numpy(), sort=True)
    return ordered, codes.astype("int64"), event_times_ns(ordered)
