"""`user_sequences.parquet` (view `user_sequence`, and `user_sequence_history` with a long TTL): the last
`SEQUENCE_LENGTH` events and the last `QUERY_COUNT` search queries before `T`, as arrays of the contract's
stable ids (registry/features/contract.py). A sequence only changes when the user acts, so a row is written
only for the steps that follow activity; the view's TTL carries it over the quiet steps.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from registry.features.contract import (
    EVENT_TYPES,
    JOIN_KEY,
    LAST_QUERIES,
    NO_PREVIOUS_EVENT,
    QUERY_COUNT,
    SEQ_CATEGORY,
    SEQ_EVENT_TYPE,
    SEQ_PRICE_BUCKET,
    SEQ_SECONDS_SINCE_PREV,
    SEQUENCE_LENGTH,
    TIMESTAMP_FIELD,
    category_id,
    event_type_id,
    parse_grain,
    price_bucket,
)
from registry.features.ordering import bounded, user_order


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
    events, _ = bounded(events, end, step)
    ordered, codes, t_ns = user_order(events)
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
            JOIN_KEY: pa.array(ordered["user_id"].to_numpy()[ends - 1], type=pa.int64()),
            TIMESTAMP_FIELD: pa.array(snap_step * step.value, type=pa.timestamp("ns", tz="UTC")),
            SEQ_EVENT_TYPE: _list_column(etype[index], offsets),
            SEQ_CATEGORY: _list_column(cat_ids[index], offsets),
            SEQ_PRICE_BUCKET: _list_column(buckets[index], offsets),
            SEQ_SECONDS_SINCE_PREV: _list_column(gap[index], offsets),
            LAST_QUERIES: _list_column(queries, q_offsets),
        }
    )
