"""Polars as the aggregate engine, measured against the numpy engine on the same events; prints a table.

    .venv/bin/pip install polars==2.1.0   # not a dependency: it lost this comparison
    .venv/bin/python -m bench.perf.features_polars --sizes 1e6 1e7

Polars computes a SUBSET of `user_activity` here: the (user, day) grid, the per-type counts over 1, 7 and
30 days and the exact distinct items over 7 and 30 days (the previous-sighting difference array written
with polars joins, as polars has no exact distinct count over a sliding window). The numpy engine
computes every column. The subset's values are checked equal to the numpy engine's before timing.
Events come from bench.perf.features' cache (bench.common.events_for).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd

from bench.common import EVENTS_CACHE, events_for
from registry.events.schema import EVENT_TYPES
from registry.features.contract import ACTIVE_TAIL_DAYS, DISTINCT_WINDOWS_DAYS, WINDOWS_DAYS
from registry.features.snapshots import iter_user_features

try:
    import polars as pl
except ImportError:  # not a dependency of shopscore: it lost this comparison (main says so, after --help)
    pl = None

DAY_NS = 86_400 * 10**9
COUNTS = [f"{t}_count_{w}d" for w in WINDOWS_DAYS for t in EVENT_TYPES]
DISTINCT = [f"distinct_items_{w}d" for w in DISTINCT_WINDOWS_DAYS]


def polars_subset(events: pd.DataFrame) -> pl.DataFrame:
    ev = pl.from_pandas(events[["user_id", "event_time", "event_type", "item_id"]])
    ev = ev.with_columns(step=pl.col("event_time").dt.epoch("ns") // DAY_NS)
    bounds = ev.group_by("user_id").agg(
        first=pl.col("step").min(), last=pl.col("step").max() + ACTIVE_TAIL_DAYS
    )
    grid = (
        bounds.with_columns(step=pl.int_ranges("first", pl.col("last") + 1))
        .explode("step")
        .select("user_id", pl.col("step").cast(pl.Int64))
    )
    per_type = ev.group_by("user_id", "step").agg(
        [(pl.col("event_type") == t).sum().alias(t) for t in EVENT_TYPES]
    )
    grid = grid.join(per_type, on=["user_id", "step"], how="left").sort("user_id", "step").fill_null(0)
    grid = grid.with_columns(
        pl.col(t).rolling_sum(window_size=w, min_samples=1).over("user_id").alias(f"{t}_count_{w}d")
        for w in WINDOWS_DAYS
        for t in EVENT_TYPES
    )
    # A sighting at step r after one at p adds 1 on steps [max(r, p + w), r + w), cut at the user's last step.
    sightings = (
        ev.filter(pl.col("item_id").is_not_null())
        .select("user_id", "item_id", "step")
        .sort("user_id", "item_id", "step", maintain_order=True)
        .with_columns(prev=pl.col("step").shift(1).over("user_id", "item_id"))
        .join(bounds.select("user_id", end=pl.col("last") + 1), on="user_id")
    )
    for w in DISTINCT_WINDOWS_DAYS:
        start = (
            pl.when(pl.col("prev").is_null())
            .then("step")
            .otherwise(pl.max_horizontal("step", pl.col("prev") + w))
        )
        edges = sightings.select(
            "user_id",
            start=pl.min_horizontal(start, "end"),
            stop=pl.min_horizontal(pl.col("step") + w, "end"),
        )
        plus = edges.group_by("user_id", step="start").len().rename({"len": "plus"})
        minus = edges.group_by("user_id", step="stop").len().rename({"len": "minus"})
        grid = (
            grid.join(plus, on=["user_id", "step"], how="left")
            .join(minus, on=["user_id", "step"], how="left")
            .sort("user_id", "step")
            .with_columns(
                (pl.col("plus").fill_null(0) - pl.col("minus").fill_null(0))
                .cum_sum()
                .over("user_id")
                .alias(f"distinct_items_{w}d")
            )
            .drop("plus", "minus")
        )
    return grid


def numpy_engine(events: pd.DataFrame) -> pd.DataFrame:
    return pd.concat(iter_user_features(events), ignore_index=True)


def timed(build, events: pd.DataFrame) -> tuple[object, float, float]:
    before, started = os.times(), time.perf_counter()
    result = build(events)
    after = os.times()
    return result, time.perf_counter() - started, (after.user - before.user) + (after.system - before.system)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e6])
    parser.add_argument("--cache", type=Path, default=EVENTS_CACHE)
    args = parser.parse_args()
    if pl is None:
        raise SystemExit("this comparison needs polars: .venv/bin/pip install polars==2.1.0")
    print(f"polars {pl.__version__}, {pl.thread_pool_size()} threads\n")
    print("| events | engine | columns | seconds | CPU s | load avg |")
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    for size in (int(s) for s in args.sizes):
        events = pd.read_parquet(events_for(size, args.cache))
        numpy_frame, numpy_s, numpy_cpu = timed(numpy_engine, events)
        subset, polars_s, polars_cpu = timed(polars_subset, events)
        got = subset.to_pandas()
        for column in COUNTS + DISTINCT:
            assert (got[column].to_numpy() == numpy_frame[column].to_numpy()).all(), column
        load = os.getloadavg()[0]
        print(
            f"| {size:,} | numpy, blocks of users | {numpy_frame.shape[1] - 2} | {numpy_s:.2f} | {numpy_cpu:.2f} | {load:.1f} |"
        )
        print(
            f"| {size:,} | polars | {len(COUNTS + DISTINCT)} | {polars_s:.2f} | {polars_cpu:.2f} | {load:.1f} |"
        )


if __name__ == "__main__":
    main()
