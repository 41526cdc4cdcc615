"""Benchmark the aggregate snapshots (`user_activity`) against an earlier engine; prints a markdown table.

    .venv/bin/python -m bench.perf.features                      # 1M and 10M events, vs --baseline
    .venv/bin/python -m bench.perf.features --sizes 1e6 --threads 1

Each run builds the snapshots from events already in memory (a pandas frame, as `read_events` returns)
and writes `user_features.parquet`, as `shopscore features build` does; reading the events is not timed.
The baseline is registry/features/pipeline.py at git revision `--baseline` (default: the last
single-threaded, whole-frame engine), loaded from git so both engines run side by side on the same events
and machine; the engine has lived in registry/features/snapshots.py since pipeline.py was split, so only
revisions before the split can be baselines as they stand. Seconds are wall time; CPU seconds (user + system) are less sensitive to other jobs on a
shared machine, so the table shows both, and the load average at the end of each run.

Events come from the synthetic generator once per size (not timed) and are cached as parquet under
`--cache` (default /tmp/shopscore-bench). Every run is a fresh process, so its peak RSS is its own; the
`events` column is the RSS after loading the events, before the build.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from bench.common import EVENTS_CACHE, events_for
from registry.features.snapshots import default_threads

BASELINE = "416cff5"  # pandas + numpy on the whole frame, one thread


def baseline_module(revision: str):
    """registry/features/pipeline.py as it was at `revision`, imported under another name."""
    source = subprocess.run(
        ["git", "show", f"{revision}:registry/features/pipeline.py"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "baseline_pipeline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("baseline_pipeline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run_one(path: Path, engine: str, threads: int) -> dict[str, float | str]:
    """Child process: build + write the snapshots of one events file with one engine."""
    from registry.features.files import write_user_features
    from registry.features.snapshots import iter_user_features

    events = pd.read_parquet(path)
    events_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory() as out:
        before, started = os.times(), time.perf_counter()
        if engine == "current":
            written = write_user_features(iter_user_features(events, threads=threads), Path(out))
        else:
            old = baseline_module(engine)
            written = old.write_user_features(old.build_user_features(events), Path(out))
        seconds, after = time.perf_counter() - started, os.times()
        rows = pd.read_parquet(written, columns=["user_id"]).shape[0]
    return {
        "events": len(events),
        "rows": rows,
        "seconds": seconds,
        "cpu": (after.user - before.user) + (after.system - before.system),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "events_mb": events_mb,
        "load": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e6, 1e7])
    parser.add_argument("--cache", type=Path, default=EVENTS_CACHE)
    parser.add_argument("--baseline", default=BASELINE, help="git revision of the engine to compare with")
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)  # child mode: PATH ENGINE THREADS
    args = parser.parse_args()
    if args.one:
        path, engine, threads = args.one
        print(json.dumps(run_one(Path(path), engine, int(threads))))
        return
    print(f"cores usable: {default_threads()}\n")
    print(
        "| events | engine | threads | snapshot rows | seconds | events/s | CPU s | events/CPU-s "
        "| peak RSS (MB) | of which events (MB) | load avg |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    ratios = []
    for size in (int(s) for s in args.sizes):
        path = events_for(size, args.cache)
        results = {}
        runs = [(args.baseline, 1), ("current", 1)] + (
            [("current", args.threads)] if args.threads > 1 else []
        )
        for engine, threads in runs:
            out = subprocess.run(
                [sys.executable, "-m", __spec__.name, "--one", str(path), engine, str(threads)],
                capture_output=True,
                text=True,
                check=True,
            )
            r = results[engine] = json.loads(out.stdout.strip().splitlines()[-1])  # the last run of each
            name = "blocks of users" if engine == "current" else f"whole frame ({engine})"
            print(
                f"| {r['events']:,} | {name} | {threads} | {r['rows']:,} | {r['seconds']:.2f} "
                f"| {r['events'] / r['seconds']:,.0f} | {r['cpu']:.2f} | {r['events'] / r['cpu']:,.0f} "
                f"| {r['peak_rss_mb']:,.0f} | {r['events_mb']:,.0f} | {r['load']:.1f} |",
                flush=True,
            )
        old, new = results[args.baseline], results["current"]
        ratios.append(
            f"{size:,} events: {old['seconds'] / new['seconds']:.1f}x faster (wall), "
            f"{old['cpu'] / new['cpu']:.1f}x less CPU, peak RSS {new['peak_rss_mb'] / old['peak_rss_mb']:.2f}x"
        )
    print("\nblocks of users vs whole frame, same events, one run:\n" + "\n".join(f"- {r}" for r in ratios))


if __name__ == "__main__":
    main()
