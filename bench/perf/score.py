"""In-process score() against a bare Feast get_online_features for the same FeatureService and users, and
score_many throughput with the bulk online read against Feast's public read path.

    .venv/bin/python -m bench.perf.score [--profile redis] [--n 3000]

Prints markdown tables: single-user latency of score() and of the bare lookup side by side (interleaved, so
both see the same machine load) with the overhead ratio, then users/s at batch 1, 100 and 1000 for the bare lookup and for
score_many reading through Feast's public API (`Scorer(bulk_reads=False)`, the old path) and through
registry.features.bulk_online (the default). The process is set up as `shopscore serve` sets up a worker:
one torch thread, heap frozen after warm-up (registry.serving.process.freeze_heap). Not a test: numbers depend on
the machine; the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import time
from collections.abc import Callable

import numpy as np
import torch

from bench.common import load_average, shop
from registry.scoring import Scorer
from registry.serving.process import freeze_heap, set_inference_threads


def percentiles(samples: list[float]) -> tuple[float, float]:
    ms = np.asarray(samples) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def throughput(fn: Callable[[list[int]], object], users: list[int], batch: int, seconds: float) -> float:
    """Users per second scored by calling fn on consecutive batches for about `seconds`."""
    gc.collect()  # start clean: no cell pays for the garbage of the one before
    done, started, i = 0, time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        chunk = [users[(i + k) % len(users)] for k in range(batch)]
        fn(chunk)
        done += batch
        i += batch
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="", help='"" (SQLite online store) or "redis"')
    parser.add_argument("--n", type=int, default=3000, help="single-user calls per path")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per throughput cell")
    args = parser.parse_args()

    set_inference_threads()
    settings, users = shop(args.profile)
    scorer, public = Scorer(settings), Scorer(settings, bulk_reads=False)
    scorer.warm()
    public.warm()
    store = scorer.feature_store
    service = store.get_feature_service("purchase_v1")
    assert scorer.reader.plan("purchase_v1").bulk, "the bulk read does not apply to this store"
    freeze_heap()

    def bare(batch: list[int]) -> object:
        return store.get_online_features(
            features=service, entity_rows=[{"user_id": u} for u in batch]
        ).to_dict()

    rng = random.Random(0)
    sample = [rng.choice(users) for _ in range(args.n)]
    # The public-read scorer is left out here: its garbage (registry protos parsed per call) would make
    # the collector run during the other paths' calls. Its cost shows in the throughput table at batch 1.
    paths: dict[str, Callable[[int], object]] = {
        "Feast get_online_features(purchase_v1).to_dict()": lambda u: bare([u]),
        "shopscore score() (bulk read + model)": scorer.score,
    }
    for u in sample[:200]:  # warm every path (connections, caches)
        for fn in paths.values():
            fn(u)
    times: dict[str, list[float]] = {name: [] for name in paths}
    started_load = load_average()
    for u in sample:
        for name, fn in paths.items():
            t0 = time.perf_counter()
            fn(u)
            times[name].append(time.perf_counter() - t0)
    stats = {name: percentiles(t) for name, t in times.items()}
    b50, b99 = stats["Feast get_online_features(purchase_v1).to_dict()"]

    profile = args.profile or "sqlite (embedded)"
    print(f"\n### score() vs bare Feast lookup, online store: {profile}")
    print(
        f"({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads "
        f"{torch.get_num_threads()}, device {scorer.models.device}, {args.n} users per path, interleaved; "
        f"load average {started_load} -> {load_average()})\n"
    )
    print("| path | p50 ms | p99 ms | p50 / bare | p99 / bare |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, (p50, p99) in stats.items():
        print(f"| {name} | {p50:.3f} | {p99:.3f} | {p50 / b50:.2f}x | {p99 / b99:.2f}x |")

    print(f"\n### score_many users/s, online store: {profile} (load average {load_average()} before)\n")
    print(
        "| batch | bare Feast lookup | score_many, Feast public read | score_many, bulk read "
        "| bulk / public | bulk / bare |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for batch in (1, 100, 1000):
        lookup, old, new = (
            throughput(fn, users, batch, args.seconds) for fn in (bare, public.score_many, scorer.score_many)
        )
        print(
            f"| {batch} | {lookup:,.0f} | {old:,.0f} | {new:,.0f} | {new / old:.1f}x | {new / lookup:.1f}x |"
        )
    print(f"\n(load average after: {load_average()})")
    scorer.close()
    public.close()


if __name__ == "__main__":
    main()
