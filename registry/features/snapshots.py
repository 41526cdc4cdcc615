"""Per-user feature snapshots, point-in-time correct, at a configurable grain (default: daily).

Three parquet files, each the batch source of one Feast view (feature_repo/users.py):

* `user_features.parquet` (view `user_activity`): one aggregate snapshot per user per grain step. A row
  stamped `T` (a multiple of the grain, UTC) summarises exactly the events with `event_time < T`. Feast's
  point-in-time join picks, for a training row with cutoff `c`, the newest snapshot with `T <= c`, so no
  feature can see an event after its row's cutoff. Each user gets snapshots from the step after their
  first event until `ACTIVE_TAIL_DAYS` after their last one (later snapshots would only repeat zeros); past
  that the view's TTL expires and the user reads as "no recent activity".
* `user_sequences.parquet` (view `user_sequence`): the last `SEQUENCE_LENGTH` events and the last
  `QUERY_COUNT` search queries before `T`, as arrays. A sequence only changes when the user acts, so a row
  is written only for the steps that follow activity; the view's TTL carries it over the quiet steps.
* `user_realtime.parquet` (view `user_realtime`, the batch side of its push source): one row per event
  stamped at the event's own time, with the state a push of that event produces (registry/features/push.py).

Stable ids (the vocabulary that models embed; never renumber them, trained models depend on them):

* event type id: `1 + EVENT_TYPES.index(type)`, so view=1 ... search=6; 0 is padding.
* category id: `1 + blake2b-64(category) % (CATEGORY_BUCKETS - 1)`; 0 means no category. Hashing keeps the
  id of a category identical across datasets and runs without a vocabulary file to ship and keep in sync;
  with 2**20 buckets two of a few thousand categories collide with probability ~0.5%, which an embedding
  tolerates.
* price bucket: `1 + min(floor(log2(1 + price)), PRICE_BUCKETS - 2)`; 0 means no price (searches).

Engine: numpy on blocks of users, with Arrow for string hashing and parquet (`iter_user_features`).
Strings are encoded once to integer codes; events are grouped into blocks of ~65k events' worth of users
(linear radix sorts), and each block is computed alone, as a user's snapshots depend only on that user's
events: every aggregate is a `np.bincount` onto the block's dense (user, step) grid followed by per-user
cumulative-sum differences, and exact distinct counts (items, categories, sessions, active days) use a
"previous sighting" difference array after one stable radix sort by key. Blocks run on a thread pool
(numpy releases the GIL) and are written one by one through a ParquetWriter, so memory beyond the events
frame is ~100 bytes per event (narrow numeric copies and their transients) plus the blocks in flight,
whatever the number of users. `build_user_sequences` and `realtime_rows` are per user too, and `build_all`
streams them in blocks of users as well.

Why numpy and not polars or DuckDB: the grid + difference-array formulation is already a few linear
passes; polars has no exact distinct count over a sliding window (the same previous-sighting trick has to
be written with its joins); and any engine pays the same cost to read the Python strings of a pandas
frame. Measured on the same events (bench/bench_features_polars.py), polars 2.1 computing only 20 of the
39 columns (per-type window counts and distinct items, with its parallel group-bys, joins and rolling
sums) took 1.3-2.9x the wall time and 1.7-2.5x the CPU of this engine computing all of them, at 1M and
10M events; so no dependency was added. DuckDB was not tried.

Measured (bench/bench_features.py, build + write from events in memory, 2-core box at load average ~1):
one thread builds 1.95M events/s at 1M events and 1.61M at 10M, 2.7x and 3.5x the previous whole-frame
engine in the same run; per CPU-second 1.4M and 1.2M events, so the cost is close to linear. Peak RSS at
10M: 3.2 GB, of which 2.2 GB is the events frame (previously 6.3 GB). Two threads did not beat one on this
box (at 10M they cost 15-20% more CPU); the serial part left is reading the strings (25-30% of the CPU).
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from registry.events.schema import EVENT_TYPES

WINDOWS_DAYS = (1, 7, 30)
DISTINCT_WINDOWS_DAYS = (7, 30)
ACTIVE_TAIL_DAYS = 30
DAY = pd.Timedelta(days=1)
HOUR = pd.Timedelta(hours=1)
GRAINS = ("1d", "6h", "1h")
FEATURES_FILE = "user_features.parquet"
SEQUENCES_FILE = "user_sequences.parquet"
REALTIME_FILE = "user_realtime.parquet"

SEQUENCE_LENGTH = 50
QUERY_COUNT = 5
CATEGORY_BUCKETS = 2**20
PRICE_BUCKETS = 16
NO_PREVIOUS_EVENT = -1  # seconds_since_prev of a user's very first event
# Events per block of users: a block's arrays (tens of MB) stay near the CPU caches, and numpy's per-call
# overhead is still small next to the work; see bench/bench_features.py.
BLOCK_EVENTS = 1 << 16
# The sequence and real-time builders work on pandas frames, whose per-call overhead wants larger blocks.
FRAME_BLOCK_EVENTS = 1 << 20


# ---- stable ids ---------------------------------------------------------------------------------------
def event_type_id(event_type: str) -> int:
    return 1 + EVENT_TYPES.index(event_type)


def category_id(category: str | None) -> int:
    """The hashed, dataset-independent id of a category (0 for none); see the module docstring."""
    if category is None or category is pd.NA or (isinstance(category, float) and np.isnan(category)):
        return 0
    digest = hashlib.blake2b(str(category).encode(), digest_size=8).digest()
    return 1 + int.from_bytes(digest, "little") % (CATEGORY_BUCKETS - 1)


def price_bucket(price: np.ndarray) -> np.ndarray:
    """Log2 price buckets 1..PRICE_BUCKETS-1; 0 where the price is missing."""
    price = np.asarray(price, dtype="float64")
    known = ~np.isnan(price)
    bucket = np.floor(np.log2(1.0 + np.where(known, np.maximum(price, 0.0), 0.0)))
    return np.where(known, 1 + np.minimum(bucket, PRICE_BUCKETS - 2), 0).astype("int64")


# ---- feature names (the Feast views declare the same names in the same order) ------------------------
def feature_columns() -> list[str]:
    """Names of every aggregate feature of `user_activity`, in a stable order."""
    counts = [f"{etype}_count_{w}d" for w in WINDOWS_DAYS for etype in EVENT_TYPES]
    return (
        counts
        + [
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
        + [f"{etype}_count_1h" for etype in EVENT_TYPES]
        + [f"distinct_{what}_{w}d" for what in ("items", "categories") for w in DISTINCT_WINDOWS_DAYS]
        + ["sessions_7d", "mean_view_price_30d"]
    )


_FEATURE_FRAME = ["user_id", "event_timestamp", *feature_columns()]


def sequence_columns() -> list[str]:
    """Names of the features of `user_sequence`, in a stable order."""
    return ["seq_event_type", "seq_category", "seq_price_bucket", "seq_seconds_since_prev", "last_queries"]


def realtime_columns() -> list[str]:
    return ["last_event_type", "last_event_at", "cart_count_today"]


# ---- the (user, step) grid --------------------------------------------------------------------------
def parse_grain(grain: str | pd.Timedelta) -> pd.Timedelta:
    """The snapshot step; it must divide a day (so day windows are whole steps) and be >= 1 hour."""
    step = pd.Timedelta(grain)
    if step < HOUR or DAY % step != pd.Timedelta(0):
        raise ValueError(f"grain {grain!r} must divide a day and be at least 1h; use one of {list(GRAINS)}")
    return step


def _ns(times: pd.Series) -> np.ndarray:
    """UTC timestamps as int64 nanoseconds since the epoch (whatever unit the column was stored in)."""
    return pd.DatetimeIndex(times).tz_convert("UTC").as_unit("ns").asi8


def _event_times_ns(events: pd.DataFrame) -> np.ndarray:
    return _ns(events["event_time"])


@dataclass
class _Events:
    """The columns the aggregates read, as arrays in time order; `user` indexes the sorted user ids."""

    t_ns: np.ndarray  # int64
    user: np.ndarray  # int32
    etype: np.ndarray  # int8 index into EVENT_TYPES
    spend: np.ndarray  # price * quantity (1 if missing) of purchases, 0 elsewhere
    view_price: np.ndarray  # price of views, NaN for other events and views without a price
    item: np.ndarray  # int32 codes, -1 where missing (see _codes)
    category: np.ndarray
    session: np.ndarray

    @classmethod
    def of(cls, events: pd.DataFrame, pool: ThreadPoolExecutor) -> tuple[_Events, np.ndarray]:
        """The arrays and the ascending user ids their `user` codes index.

        Strings are encoded once here (reading Python strings holds the GIL; Arrow's hashing of one
        column overlaps the reading of the next on `pool`); the blocks then work on numbers only, which
        numpy processes outside the GIL, so they run in parallel. Narrow types make their gathers cheaper.
        """
        codes, users = pd.factorize(events["user_id"].to_numpy(), sort=True)
        keys = [events[column] for column in ("item_id", "category", "session_id")]
        keys = pool.map(_codes, keys)  # starts now, overlapping the event types below
        etype, names = _codes(events["event_type"])
        unknown = sorted(set(names.to_pylist()) - set(EVENT_TYPES)) + (
            ["<null>"] if (etype < 0).any() else []
        )
        if unknown:
            raise ValueError(f"unknown event types {unknown}; conform events to {EVENT_TYPES} first")
        etype = np.array([EVENT_TYPES.index(name) for name in names.to_pylist()], "int8")[etype]
        price = events["price"].to_numpy(dtype="float64", na_value=np.nan)
        quantity = events["quantity"].to_numpy(dtype="float64", na_value=np.nan)
        is_purchase = etype == EVENT_TYPES.index("purchase")
        arrays = cls(
            _event_times_ns(events),
            codes.astype("int32"),
            etype,
            np.where(is_purchase, np.nan_to_num(price) * np.where(np.isnan(quantity), 1.0, quantity), 0.0),
            np.where(etype == EVENT_TYPES.index("view"), price, np.nan),
            *(codes for codes, _ in keys),
        )
        return arrays, np.asarray(users)

    def take(self, index: np.ndarray) -> _Events:
        return _Events(*(getattr(self, f.name)[index] for f in fields(self)))


@dataclass
class Grid:
    """A dense block of steps per user: row `r` is (user, step); a user's rows are contiguous."""

    step_ns: int
    first_step: np.ndarray  # (U,) first step index (ns // step_ns) of each user's block
    offsets: np.ndarray  # (U + 1,) row offset of each user's block
    event_user: np.ndarray  # (N,) user code of each event
    event_step: np.ndarray  # (N,) step index of each event
    event_row: np.ndarray  # (N,) grid row of each event

    @property
    def rows(self) -> int:
        return int(self.offsets[-1])

    def row_user_code(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.first_step)), np.diff(self.offsets))

    @cached_property
    def block_start(self) -> np.ndarray:
        """(R,) first row of each row's user block."""
        return np.repeat(self.offsets[:-1], np.diff(self.offsets))

    def snapshot_ns(self) -> np.ndarray:
        """(R,) the time T of each row in ns: the end of its step (events strictly before T are visible)."""
        within = np.arange(self.rows) - self.block_start
        return (np.repeat(self.first_step, np.diff(self.offsets)) + within + 1) * self.step_ns


def _grid(
    user: np.ndarray, n_users: int, t_ns: np.ndarray, step: pd.Timedelta, last_step: int | None
) -> Grid:
    """The grid of users `0 .. n_users - 1`, each of whom has at least one event."""
    step_ns = step.value
    event_step = t_ns // step_ns
    first = np.full(n_users, np.iinfo("int64").max)
    np.minimum.at(first, user, event_step)
    last = np.full(n_users, np.iinfo("int64").min)
    np.maximum.at(last, user, event_step)
    last += ACTIVE_TAIL_DAYS * (DAY // step)
    if last_step is not None:
        last = np.minimum(last, last_step)
    offsets = np.r_[0, np.cumsum(last - first + 1)]
    row = offsets[user] + event_step - first[user]
    return Grid(step_ns, first, offsets, user, event_step, row)


def _window_sums(values: np.ndarray, group_start: np.ndarray, windows: list[int]) -> list[np.ndarray]:
    """Per window `w`: the sum of the last `w` rows (this row included) within each user's block of rows.

    One cumulative sum serves every window: row i's sum is csum[i + 1] - csum[max(i + 1 - w, block start)].
    """
    csum = np.concatenate([np.zeros((1, *values.shape[1:]), values.dtype), np.cumsum(values, axis=0)])
    upto = np.arange(1, len(values) + 1)
    out = []
    for window in windows:
        total = csum[1:] - csum[np.maximum(upto - window, group_start)]
        # Float differences of a long running sum carry noise in the last digits; integers are exact.
        out.append(total if values.dtype.kind == "i" else np.rint(total * 1e6) / 1e6)
    return out


def _distinct_in_windows(grid: Grid, key: np.ndarray, windows: list[int]) -> list[np.ndarray]:
    """Per window `w`: (R,) exact number of distinct keys (codes >= 0; -1 is missing) among the events of
    the last `w` rows of a user's block.

    A sighting of a key at row r keeps it inside the window for rows r .. r + w - 1; the user's previous
    sighting p of that key already covered rows up to p + w - 1, so this one adds 1 on rows
    [max(r, p + w), r + w) only. The union of these intervals is exactly the rows where the key is in the
    window, so a difference array summed once counts every key once. Needs the events sorted by (user,
    time), as `_user_blocks` gives them: then one stable (radix) sort by key groups each (user, key) in time
    order.
    """
    valid = key >= 0
    key, rows, users = key[valid], grid.event_row[valid], grid.event_user[valid]
    order = _stable_order(key)
    key, rows, users = key[order], rows[order], users[order]
    has_prev = np.r_[False, (key[1:] == key[:-1]) & (users[1:] == users[:-1])]
    prev = np.r_[0, rows[:-1]]
    block_end = grid.offsets[users + 1]
    out = []
    for window in windows:
        start = np.minimum(np.where(has_prev, np.maximum(rows, prev + window), rows), block_end)
        stop = np.minimum(rows + window, block_end)
        diff = np.bincount(start, minlength=grid.rows + 1) - np.bincount(stop, minlength=grid.rows + 1)
        out.append(np.cumsum(diff[:-1]))
    return out


def _codes(column: pd.Series) -> tuple[np.ndarray, pa.Array]:
    """Dense int32 codes of a (string or nullable int) column, -1 where null, and the values they index.

    Arrow's hash encoder is several times faster than pandas.factorize on strings, and releases the GIL.
    """
    values = pa.array(column, from_pandas=True)  # chunked past 2 GB of strings; one dictionary for all
    chunked = values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
    encoded = pc.dictionary_encode(chunked).combine_chunks()
    return np.asarray(encoded.indices.fill_null(-1)).astype("int32"), encoded.dictionary


def _stable_order(key: np.ndarray) -> np.ndarray:
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


def _bounded(
    events: pd.DataFrame, end: pd.Timestamp | None, step: pd.Timedelta
) -> tuple[pd.DataFrame, int | None]:
    if events.empty:
        raise ValueError("no events to build features from; generate or import events first")
    if end is None:
        return events, None
    end = pd.Timestamp(end).tz_convert("UTC").floor(step)
    events = events[events["event_time"] < end]
    if events.empty:
        raise ValueError(f"no events before end={end}; choose a later end")
    return events, end.value // step.value - 1  # the last step whose snapshot (at its end) is `end`


def _user_blocks(user: np.ndarray, n_users: int, block_events: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """Consecutive ranges of user codes holding about `block_events` events each: (first, stop, event index).

    A user's snapshots depend on that user's events only, so each block is computed alone. Stable radix
    sorts (block number, then user within the block) group the events and keep each user's in time order.
    """
    counts = np.bincount(user, minlength=n_users)
    block_of_user = (np.cumsum(counts) - counts) // max(block_events, 1)
    block_of_user = np.r_[0, np.cumsum(np.diff(block_of_user) > 0)]  # number the blocks 0, 1, 2, ...
    order = _stable_order(block_of_user[user])
    bounds = np.r_[0, np.cumsum(np.bincount(block_of_user[user]))]
    first_user = np.r_[0, np.flatnonzero(np.diff(block_of_user)) + 1, n_users]
    for b in range(len(bounds) - 1):
        first, index = first_user[b], order[bounds[b] : bounds[b + 1]]
        # Within the block, group by user (time order kept): the layout `_distinct_in_windows` needs.
        yield int(first), int(first_user[b + 1]), index[_stable_order(user[index] - first)]


def _block_features(ev: _Events, n_users: int, step: pd.Timedelta, last_step: int | None) -> dict:
    """Every `user_activity` column for users `0 .. n_users - 1` of `ev`, plus each row's `user_code`."""
    grid = _grid(ev.user, n_users, ev.t_ns, step, last_step)
    rows, types = grid.rows, len(EVENT_TYPES)
    group_start = grid.block_start
    per_day = DAY // step  # steps per day
    etype = ev.etype
    snapshot_ns = grid.snapshot_ns()
    cols: dict[str, np.ndarray] = {"user_code": grid.row_user_code(), "event_timestamp": snapshot_ns}

    def per_row(weights: np.ndarray | None = None, mask: np.ndarray | None = None) -> np.ndarray:
        idx = grid.event_row if mask is None else grid.event_row[mask]
        w = weights if weights is None or mask is None else weights[mask]
        return np.bincount(idx, weights=w, minlength=rows)

    per_type = np.bincount(grid.event_row * types + etype, minlength=rows * types).reshape(rows, types)
    per_type = per_type.astype("int32")  # half the memory traffic of int64; counts stay far below 2**31
    whole = rows + 1  # a window longer than any block: the running total
    windows = [days * per_day for days in WINDOWS_DAYS] + [whole]
    *sums, totals = _window_sums(per_type, group_start, windows)
    for days, counts in zip(WINDOWS_DAYS, sums, strict=True):
        for j, name in enumerate(EVENT_TYPES):
            cols[f"{name}_count_{days}d"] = counts[:, j].astype("int64")  # the Feast type

    windows = [30 * per_day, whole]
    cols["spend_30d"], cols["spend_total"] = _window_sums(per_row(ev.spend), group_start, windows)
    cols["purchases_total"] = totals[:, EVENT_TYPES.index("purchase")].astype("int64")
    day = ev.t_ns // DAY.value
    (cols["active_days_30d"],) = _distinct_in_windows(grid, day - day.min(), [30 * per_day])
    cols["view_to_cart_30d"] = _ratio(cols["cart_count_30d"], cols["view_count_30d"])
    cols["cart_to_purchase_30d"] = _ratio(cols["purchase_count_30d"], cols["cart_count_30d"])
    for column, mask in (
        ("hours_since_last_event", None),
        ("hours_since_last_cart", etype == EVENT_TYPES.index("cart")),
        ("hours_since_last_purchase", etype == EVENT_TYPES.index("purchase")),
    ):
        cols[column] = _hours_since_last(grid, ev.t_ns, mask, snapshot_ns)

    # The hour before T lies inside T's own step (grain >= 1h): count that step's events in its last hour.
    step_end = (grid.event_step + 1) * grid.step_ns
    last_hour = ev.t_ns >= step_end - HOUR.value
    hour = np.bincount(grid.event_row[last_hour] * types + etype[last_hour], minlength=rows * types)
    for j, name in enumerate(EVENT_TYPES):
        cols[f"{name}_count_1h"] = hour.reshape(rows, types)[:, j]

    windows = [days * per_day for days in DISTINCT_WINDOWS_DAYS]
    for what, key in (("items", ev.item), ("categories", ev.category)):
        for days, counts in zip(DISTINCT_WINDOWS_DAYS, _distinct_in_windows(grid, key, windows), strict=True):
            cols[f"distinct_{what}_{days}d"] = counts
    (cols["sessions_7d"],) = _distinct_in_windows(grid, ev.session, [7 * per_day])
    viewed = ~np.isnan(ev.view_price)
    priced = np.stack([per_row(ev.view_price, viewed), per_row(None, viewed)], axis=1)
    price_sum, price_n = _window_sums(priced, group_start, [30 * per_day])[0].T
    cols["mean_view_price_30d"] = np.divide(price_sum, price_n, out=np.full(rows, np.nan), where=price_n > 0)
    return cols


def default_threads() -> int:
    """The cores this process may run on (the affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def iter_user_features(
    events: pd.DataFrame,
    *,
    end: pd.Timestamp | None = None,
    grain: str | pd.Timedelta = "1d",
    block_events: int = BLOCK_EVENTS,
    threads: int | None = None,
) -> Iterator[pd.DataFrame]:
    """`build_user_features` in consecutive blocks of users (ascending ids), computed on `threads` threads
    (default: the usable cores). Memory beyond `events` is bounded by the blocks in flight, not by users.
    """
    step = parse_grain(grain)
    events, last_step = _bounded(events, end, step)
    if not events["event_time"].is_monotonic_increasing:
        events = events.sort_values("event_time", kind="stable")  # read_events already is
    threads = threads or default_threads()
    with ThreadPoolExecutor(threads) as pool:  # numpy and Arrow release the GIL in their loops
        arrays, users = _Events.of(events, pool)
        del events  # the arrays hold all the blocks need

        def compute(first: int, stop: int, index: np.ndarray) -> pd.DataFrame:
            block = arrays.take(index)
            block.user -= first
            cols = _block_features(block, stop - first, step, last_step)
            cols["user_id"] = users[first + cols.pop("user_code")]
            cols["event_timestamp"] = pd.DatetimeIndex(cols["event_timestamp"]).tz_localize("UTC")
            # copy=False keeps one block per column: consolidating ~50 columns would copy the whole frame.
            return pd.DataFrame({name: cols[name] for name in _FEATURE_FRAME}, copy=False)

        pending: deque[Future[pd.DataFrame]] = deque()
        for block in _user_blocks(arrays.user, len(users), block_events):
            pending.append(pool.submit(compute, *block))
            if len(pending) > threads:  # a bounded window keeps memory flat while the consumer writes
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def build_user_features(
    events: pd.DataFrame, *, end: pd.Timestamp | None = None, grain: str | pd.Timedelta = "1d"
) -> pd.DataFrame:
    """Aggregate per-user snapshots from canonical events, one per user per grain step.

    Returns columns `user_id`, `event_timestamp` (the snapshot time T) and `feature_columns()`.
    `end` (default: after the last event's step) bounds the last snapshot. `write_user_features` takes
    `iter_user_features` instead to stream large inputs in bounded memory.
    """
    return pd.concat(iter_user_features(events, end=end, grain=grain), ignore_index=True)


def _hours_since_last(
    grid: Grid, t_ns: np.ndarray, mask: np.ndarray | None, snapshot_ns: np.ndarray
) -> np.ndarray:
    """Hours from the newest (masked) event before T to T, carried forward within each user; NaN if none."""
    rows = grid.event_row if mask is None else grid.event_row[mask]
    times = t_ns if mask is None else t_ns[mask]
    newest = np.full(grid.rows, np.iinfo("int64").min)
    np.maximum.at(newest, rows, times)
    present = newest != np.iinfo("int64").min
    last_row = np.maximum.accumulate(np.where(present, np.arange(grid.rows), -1))
    seen = last_row >= grid.block_start  # never carry a time across users
    last_time = np.where(seen, newest[np.maximum(last_row, 0)], 0)
    hours = (snapshot_ns - last_time) / 3.6e12
    return np.where(seen, hours, np.nan)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (no views means no conversion to measure)."""
    den = denominator.astype("float64")
    return np.divide(numerator.astype("float64"), den, out=np.zeros_like(den), where=den > 0)


# ---- sequences -------------------------------------------------------------------------------------------
def _user_order(events: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Events sorted by (user, time), with their user codes and step indices."""
    ordered = events.sort_values(["user_id", "event_time"], kind="stable").reset_index(drop=True)
    codes, _ = pd.factorize(ordered["user_id"].to_numpy(), sort=True)
    return ordered, codes.astype("int64"), _event_times_ns(ordered)


def _last_k(ends: np.ndarray, starts: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Gather indices of the last `k` positions before each `ends[i]` (not before `starts[i]`), as offsets."""
    begin = np.maximum(ends - k, starts)
    lengths = ends - begin
    offsets = np.r_[0, np.cumsum(lengths)]
    index = np.repeat(begin - offsets[:-1], lengths) + np.arange(offsets[-1])
    return index, offsets


def _list_column(values: np.ndarray | pa.Array, offsets: np.ndarray) -> pa.ListArray:
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), values)


def build_user_sequences(
    events: pd.DataFrame, *, end: pd.Timestamp | None = None, grain: str | pd.Timedelta = "1d"
) -> pa.Table:
    """Sequence snapshots: for each step after which a user was active, the last events before T as arrays.

    Columns: `user_id`, `event_timestamp` (T) and `sequence_columns()`, each a list, oldest first.
    """
    step = parse_grain(grain)
    events, _ = _bounded(events, end, step)
    ordered, codes, t_ns = _user_order(events)
    step_idx = t_ns // step.value
    # One snapshot per active (user, step): it sees the events up to and including that step's last one.
    key = codes * np.int64(step_idx.max() + 2) + step_idx
    is_last_of_step = np.r_[key[1:] != key[:-1], True]
    ends = np.flatnonzero(is_last_of_step) + 1
    user_first = np.searchsorted(codes, codes, side="left")
    index, offsets = _last_k(ends, user_first[ends - 1], SEQUENCE_LENGTH)

    etype = pd.Categorical(ordered["event_type"], categories=list(EVENT_TYPES)).codes.astype("int64") + 1
    categories = ordered["category"].astype("object")
    uniques = pd.unique(categories.dropna())
    cat_ids = categories.map({c: category_id(c) for c in uniques}).fillna(0).to_numpy(dtype="int64")
    buckets = price_bucket(ordered["price"].to_numpy(dtype="float64", na_value=np.nan))
    gap = np.r_[NO_PREVIOUS_EVENT, np.diff(t_ns) // 1_000_000_000]
    gap = np.where(user_first == np.arange(len(ordered)), NO_PREVIOUS_EVENT, gap)

    searches = np.flatnonzero((etype == event_type_id("search")) & ordered["query"].notna().to_numpy())
    # Number of the user's searches at or before each snapshot's last event, and before the user's first.
    q_end = np.searchsorted(searches, ends - 1, side="right")
    q_start = np.searchsorted(searches, user_first[ends - 1], side="left")
    q_index, q_offsets = _last_k(q_end, q_start, QUERY_COUNT)
    queries = pa.array(ordered["query"].to_numpy(dtype="object")[searches[q_index]], type=pa.string())

    snap_step = step_idx[ends - 1] + 1
    return pa.table(
        {
            "user_id": pa.array(ordered["user_id"].to_numpy()[ends - 1], type=pa.int64()),
            "event_timestamp": pa.array(snap_step * step.value, type=pa.timestamp("ns", tz="UTC")),
            "seq_event_type": _list_column(etype[index], offsets),
            "seq_category": _list_column(cat_ids[index], offsets),
            "seq_price_bucket": _list_column(buckets[index], offsets),
            "seq_seconds_since_prev": _list_column(gap[index], offsets),
            "last_queries": _list_column(queries, q_offsets),
        }
    )


# ---- real-time state (batch side of the push source) -------------------------------------------------
def realtime_rows(events: pd.DataFrame, *, carts_before: pd.Series | None = None) -> pd.DataFrame:
    """The `user_realtime` state after each event: last event type and time, carts so far that UTC day.

    One row per (user, event time), the last event winning ties, so Feast's point-in-time join is exact.
    `carts_before` (user_id -> carts already counted on the first event's day) lets a push continue the
    count held online.
    """
    ordered = events.sort_values(["user_id", "event_time"], kind="stable").reset_index(drop=True)
    day = ordered["event_time"].dt.floor("D")
    is_cart = (ordered["event_type"] == "cart").astype("int64")
    carts = is_cart.groupby([ordered["user_id"], day]).cumsum()
    if carts_before is not None:
        first_day = day.groupby(ordered["user_id"]).transform("min")
        carry = ordered["user_id"].map(carts_before).fillna(0).astype("int64")
        carts = carts + np.where(day == first_day, carry, 0)
    out = pd.DataFrame(
        {
            "user_id": ordered["user_id"].astype("int64"),
            "event_timestamp": ordered["event_time"],
            "last_event_type": ordered["event_type"].astype("object"),
            "last_event_at": _event_times_ns(ordered) / 1e9,
            "cart_count_today": carts.astype("int64"),
        }
    )
    return out.drop_duplicates(["user_id", "event_timestamp"], keep="last").reset_index(drop=True)


# ---- files ---------------------------------------------------------------------------------------------
def _write_atomic(tables: Iterable[pa.Table], features_dir: Path, name: str, **options: Any) -> Path:
    """Stream `tables` (one schema) into `<features_dir>/<name>`, replacing it only once all are written.

    `options` go to pyarrow's ParquetWriter."""
    features_dir.mkdir(parents=True, exist_ok=True)
    target = features_dir / name
    tmp = features_dir / f".{name}.tmp"
    writer = None
    try:
        for table in tables:
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema, **options)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise ValueError(f"nothing to write to {name}; build from at least one event")
    tmp.replace(target)
    return target


def _tables(frames: pd.DataFrame | Iterable[pd.DataFrame]) -> Iterator[pa.Table]:
    for frame in [frames] if isinstance(frames, pd.DataFrame) else frames:
        yield pa.Table.from_pandas(frame, preserve_index=False)


def write_user_features(features: pd.DataFrame | Iterable[pd.DataFrame], features_dir: Path) -> Path:
    """Write snapshots atomically to `<features_dir>/user_features.parquet` (the Feast FileSource).

    `features` is one frame or, to stream in bounded memory, the blocks of `iter_user_features`.
    """
    # Dictionary pages would double the write time of these ~40 numeric columns to save a quarter of the size.
    return _write_atomic(_tables(features), features_dir, FEATURES_FILE, use_dictionary=False)


def write_user_sequences(sequences: pa.Table | Iterable[pa.Table], features_dir: Path) -> Path:
    tables = [sequences] if isinstance(sequences, pa.Table) else sequences
    return _write_atomic(tables, features_dir, SEQUENCES_FILE)


def write_realtime_rows(rows: pd.DataFrame | Iterable[pd.DataFrame], features_dir: Path) -> Path:
    return _write_atomic(_tables(rows), features_dir, REALTIME_FILE)


def _event_blocks(events: pd.DataFrame) -> Iterator[pd.DataFrame]:
    """The events of consecutive blocks of users (ascending ids), rows in their original order: the
    sequence and real-time builders are per user too, so building block by block and writing each block
    gives the same file as building all at once, in memory bounded by a block."""
    codes, users = pd.factorize(events["user_id"].to_numpy(), sort=True)
    for _, _, index in _user_blocks(codes, len(users), FRAME_BLOCK_EVENTS):
        yield events.iloc[np.sort(index)]


def build_all(events: pd.DataFrame, features_dir: Path, *, grain: str = "1d") -> dict[str, Path]:
    """Build and write every batch source the feature repo reads; returns {view name: its file}."""
    from registry.features import lifetime  # it builds on this module's helpers, so it imports this one

    return {
        "user_activity": write_user_features(iter_user_features(events, grain=grain), features_dir),
        "user_sequence": write_user_sequences(
            (build_user_sequences(block, grain=grain) for block in _event_blocks(events)), features_dir
        ),
        "user_realtime": write_realtime_rows(
            (realtime_rows(block) for block in _event_blocks(events)), features_dir
        ),
        **lifetime.write_user_lifetime(lifetime.build_user_lifetime(events), features_dir),
    }
