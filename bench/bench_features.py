"""Benchmark the aggregate snapshot pipeline on synthetic events; prints a markdown table.

    .venv/bin/python bench/bench_features.py            # 1M and 10M events
    .venv/bin/python bench/bench_features.py --sizes 1e6

Engine: pandas + numpy (registry/features/pipeline.py). Each aggregate is one `np.bincount` onto a dense
(user, day) grid plus per-user cumulative-sum differences, and the exact distinct counts use a
previous-sighting difference array, so the work is a few linear passes over the events and the grid, in
one thread. Chosen because it is already a dependency and its cost is measured linear; it does NOT yet
reach the >= 1M events/s target (see README). DuckDB or polars (parallel group-bys) are the next thing to
measure; add one only if this benchmark shows it faster.

Events come from the synthetic generator once per size (not timed) and are cached as parquet under
`--cache` (default /tmp/shopscore-bench), so reruns time only the pipeline. Each size runs in a fresh
process so the peak RSS is that size's own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

# Roughly 450k events per 2,500 users over 90 days with the generator's defaults (measured, not exact).
EVENTS_PER_USER_90D = 180


def events_for(size: int, cache: Path) -> Path:
    """`size` generator events (blocks of users with distinct ids), streamed to one parquet file."""
    path = cache / f"events_{size}.parquet"
    if path.is_file():
        return path
    import pyarrow as pa
    import pyarrow.parquet as pq

    from registry.events.generate import generate_events
    from registry.events.schema import ARROW_SCHEMA

    cache.mkdir(parents=True, exist_ok=True)
    users = max(1, size // EVENTS_PER_USER_90D)
    tmp = path.with_suffix(".tmp")
    total, seed = 0, 0
    with pq.ParquetWriter(tmp, ARROW_SCHEMA) as writer:
        while total < size:  # blocks of users keep memory bounded
            block = generate_events(users=min(users, 5000), days=90, seed=seed, start="2024-01-01")
            block = block.iloc[: size - total]
            block["user_id"] += seed * 1_000_000
            writer.write_table(pa.Table.from_pandas(block, schema=ARROW_SCHEMA, preserve_index=False))
            total += len(block)
            seed += 1
    tmp.replace(path)
    return path


def run_one(path: Path) -> dict[str, float]:
    from registry.features.pipeline import build_user_features

    events = pd.read_parquet(path)
    started = time.perf_counter()
    snapshots = build_user_features(events)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"events": len(events), "rows": len(snapshots), "seconds": seconds, "peak_rss_mb": peak_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e6, 1e7])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/shopscore-bench"))
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # child mode: time one file
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one)))
        return
    print("| events | snapshot rows | seconds | events/s | peak RSS (MB) |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for size in (int(s) for s in args.sizes):
        path = events_for(size, args.cache)
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(path)], capture_output=True, text=True, check=True
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"| {r['events']:,} | {r['rows']:,} | {r['seconds']:.2f} | {r['events'] / r['seconds']:,.0f} "
            f"| {r['peak_rss_mb']:,.0f} |"
        )


if __name__ == "__main__":
    main()
