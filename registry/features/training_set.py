"""Point-in-time training sets: Feast features as of each cutoff + a head's label from the events after it.

A row is (user_id, cutoff). Its features come from `get_historical_features` by FeatureService, so the
newest snapshot at or before the cutoff is used; its label is computed by the head (`Head.compute_label`)
from events strictly after the cutoff, inside the horizon, and nothing else.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from feast import FeatureStore
from tqdm.auto import tqdm

from registry.errors import TrainingGridTooLarge
from registry.features.contract import JOIN_KEY, TIMESTAMP_FIELD
from registry.features.online import request_fields
from registry.modeling.tasks import LabelWindow

EPOCH = pd.Timestamp(0, tz="UTC")


def as_utc(value: str | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def entity_rows(events: pd.DataFrame, cutoffs: Sequence[pd.Timestamp]) -> pd.DataFrame:
    """(user_id, event_timestamp=cutoff) for every user with at least one event before the cutoff."""
    first_seen = events.groupby("user_id")["event_time"].min()
    frames = [
        pd.DataFrame({JOIN_KEY: first_seen.index[first_seen < c].to_numpy(), TIMESTAMP_FIELD: c})
        for c in cutoffs
    ]
    rows = pd.concat(frames, ignore_index=True)
    rows[TIMESTAMP_FIELD] = pd.to_datetime(rows[TIMESTAMP_FIELD], utc=True)
    return rows


@dataclass(frozen=True)
class LabelSpec:
    """A head's label: the training-frame column it goes in, and the function computing it per cutoff
    (`Head.compute_label`, given a LabelWindow holding the head's `config`)."""

    column: str
    compute: Callable[[LabelWindow], Any]
    config: Any = None


def compute_labels(events: pd.DataFrame, rows: pd.DataFrame, horizon_days: int, spec: LabelSpec) -> pd.Series:
    """The label of each (user_id, cutoff) row, from the events in (cutoff, cutoff + horizon] only."""
    events = events.sort_values("event_time", kind="stable")
    times = events["event_time"].astype("datetime64[ns, UTC]").array.asi8  # UTC nanoseconds, sorted
    horizon = pd.Timedelta(days=horizon_days)
    values: list[Any] = [None] * len(rows)
    for cutoff, positions in rows.groupby(TIMESTAMP_FIELD).indices.items():
        cutoff = as_utc(cutoff)
        bounds = [cutoff.as_unit("ns").value, (cutoff + horizon).as_unit("ns").value]
        start, stop = np.searchsorted(times, bounds, side="right")  # (cutoff, cutoff + horizon]
        users = rows[JOIN_KEY].to_numpy()[positions]
        window = LabelWindow(cutoff, horizon_days, users, events.iloc[start:stop], spec.config)
        got = list(spec.compute(window))
        if len(got) != len(users):
            raise ValueError(
                f"compute_label returned {len(got)} labels for {len(users)} users at {cutoff.date()}"
            )
        for position, value in zip(positions, got, strict=True):
            values[position] = value
    return pd.Series(values, index=rows.index, name=spec.column).infer_objects()


def historical_features(store: FeatureStore, service_name: str, rows: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time features for `rows`, one output row per input row, in the input order.

    Each stored view is retrieved on its own (and the on-demand views together), as serving reads them:
    Feast's file offline store drops an entity row when any view of a request has no snapshot inside its
    TTL, which would blank every other view's features for that row too (in `purchase_rt_v1`, 70% of the
    rows of a bench shop had their aggregates blanked by an expired real-time view), while online an expired
    view reads as missing and the others do not. Dropped rows come back with nulls for that view only.
    """
    service = store.get_feature_service(service_name)
    entity_df = rows.copy()
    requested = request_fields(store, service)
    for name in requested:
        # Request-time features are computed as of the cutoff, the moment the row stands for.
        entity_df[name] = (entity_df[TIMESTAMP_FIELD] - EPOCH).dt.total_seconds()
    keys = [JOIN_KEY, TIMESTAMP_FIELD]
    merged = entity_df[keys + requested]
    on_demand = {v.name for v in store.list_on_demand_feature_views()}
    groups = [[p] for p in service.feature_view_projections if p.name not in on_demand]
    groups += [[p for p in service.feature_view_projections if p.name in on_demand]]
    for projections in filter(None, groups):
        refs = [f"{p.name_to_use()}:{f.name}" for p in projections for f in p.features]
        fetched = store.get_historical_features(entity_df=entity_df, features=refs).to_df()
        fetched[TIMESTAMP_FIELD] = pd.to_datetime(fetched[TIMESTAMP_FIELD], utc=True)
        columns = [f.name for p in projections for f in p.features]
        merged = merged.merge(fetched[keys + columns], on=keys, how="left", validate="one_to_one")
    names = [f.name for p in service.feature_view_projections for f in p.features]
    return merged[keys + requested + names]


# Entity rows per point-in-time retrieval: Feast's file offline store joins a whole request in memory, so
# a grid of many cutoffs x users is retrieved in blocks of this many rows and concatenated.
RETRIEVAL_BLOCK_ROWS = 100_000
# A training frame is held about three times over while training: the frame, its train/valid/test split
# copies and the featurised tensors.
TRAINING_COPIES = 3


def build_training_set(
    store: FeatureStore,
    events: pd.DataFrame,
    *,
    service_name: str,
    cutoffs: Sequence[pd.Timestamp],
    horizon_days: int,
    label: LabelSpec | None = None,
    memory_budget_bytes: float | None = None,
    block_rows: int = RETRIEVAL_BLOCK_ROWS,
) -> pd.DataFrame:
    """Features as of each cutoff + the `label` column (when given), one row per (user with history, cutoff).

    Retrieved in blocks of `block_rows` entity rows, so Feast's join never holds the whole grid. With a
    `memory_budget_bytes`, the first block measures the bytes a row takes and the grid is refused
    (TrainingGridTooLarge, naming the estimate) before the others are retrieved when it would not fit.
    """
    rows = entity_rows(events, cutoffs)
    # Block k takes every n-th row from row k, so each block (the first, which measures, included) spans
    # every cutoff, early short histories and late long ones alike.
    n_blocks = max(1, math.ceil(len(rows) / block_rows))
    positions = [np.arange(k, len(rows), n_blocks) for k in range(n_blocks)]
    blocks = []
    for k in tqdm(
        range(n_blocks), desc="training set", unit="block", disable=True if n_blocks == 1 else None
    ):
        block = historical_features(store, service_name, rows.iloc[positions[k]])
        if k == 0 and memory_budget_bytes is not None:
            check_grid_fits(block, rows, memory_budget_bytes)
        blocks.append(block)
    features = pd.concat(blocks, ignore_index=True) if n_blocks > 1 else blocks[0]
    features = features.iloc[np.argsort(np.concatenate(positions), kind="stable")].reset_index(drop=True)
    if label is not None:  # `features` is in the order of `rows`
        features[label.column] = compute_labels(events, rows, horizon_days, label).to_numpy()
    return features


def check_grid_fits(sample: pd.DataFrame, rows: pd.DataFrame, budget_bytes: float) -> None:
    """Raise TrainingGridTooLarge when `rows` retrieved like `sample` would not fit in `budget_bytes`."""
    per_row = sample.memory_usage(index=False, deep=True).sum() / max(len(sample), 1)
    needed = per_row * len(rows) * TRAINING_COPIES
    if needed <= budget_bytes:
        return
    cutoffs = rows[TIMESTAMP_FIELD].nunique()
    fitting = max(1, int(cutoffs * budget_bytes / needed))
    raise TrainingGridTooLarge(
        f"the training set would be {len(rows):,} rows ({cutoffs} cutoffs x up to "
        f"{rows.groupby(TIMESTAMP_FIELD).size().max():,} users), about {needed / 2**30:.1f} GiB while training, "
        f"more than the {budget_bytes / 2**30:.1f} GiB available (SHOPSCORE_TRAIN_MEMORY_GB); pass about "
        f"{fitting} dates to --train-cutoffs (with --valid-cutoff and --test-cutoff), or train on a machine "
        f"with more memory"
    )


def _cell_key(value: object) -> object:
    if isinstance(value, (list, tuple, np.ndarray)):
        return "\x1f".join(map(str, list(value)))
    return value


def fingerprint(frame: pd.DataFrame) -> str:
    """A stable sha256 of a training frame's content (column names, order and values)."""
    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    # List cells (sequence features) are unhashable for pandas: hash their text form, element by element.
    hashable = frame.apply(lambda c: c.map(_cell_key) if c.dtype == object else c)
    digest.update(
        np.ascontiguousarray(pd.util.hash_pandas_object(hashable, index=False).to_numpy()).tobytes()
    )
    return digest.hexdigest()
