"""In-process score() against a bare Feast get_online_features for the same FeatureService and users.

    .venv/bin/python bench/bench_score.py [--profile redis] [--n 3000]

Prints markdown tables: single-user latency side by side (interleaved, so both see the same machine
load) with the overhead ratio, then score_many throughput at batch 1, 100 and 1000 next to the bare
lookup at the same batch sizes. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import platform
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._shop import shop  # noqa: E402
from registry.scoring import Scorer, set_inference_threads  # noqa: E402


def percentiles(samples: list[float]) -> tuple[float, float]:
    ms = np.asarray(samples) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def throughput(fn: Callable[[list[int]], object], users: list[int], batch: int, seconds: float) -> float:
    """Users per second scored by calling fn on consecutive batches for about `seconds`."""
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
    parser.add_argument("--n", type=int, default=3000, help="single-user calls per side")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per throughput cell")
    args = parser.parse_args()

    set_inference_threads()
    settings, users = shop(args.profile)
    scorer = Scorer(settings)
    scorer.warm()
    store = scorer.store
    service = store.get_feature_service("purchase_v1")

    def bare(batch: list[int]) -> object:
        return store.get_online_features(
            features=service, entity_rows=[{"user_id": u} for u in batch]
        ).to_dict()

    rng = random.Random(0)
    sample = [rng.choice(users) for _ in range(args.n)]
    for u in sample[:200]:  # warm both paths (connections, caches)
        bare([u])
        scorer.score(u)
    t_bare, t_score = [], []
    for u in sample:
        t0 = time.perf_counter()
        bare([u])
        t1 = time.perf_counter()
        scorer.score(u)
        t2 = time.perf_counter()
        t_bare.append(t1 - t0)
        t_score.append(t2 - t1)
    (b50, b99), (s50, s99) = percentiles(t_bare), percentiles(t_score)

    profile = args.profile or "sqlite (embedded)"
    print(f"\n### score() vs bare Feast lookup, online store: {profile}")
    print(
        f"({platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}, "
        f"device {scorer.device}, {args.n} users, interleaved)\n"
    )
    print("| path | p50 ms | p99 ms |")
    print("| --- | ---: | ---: |")
    print(f"| Feast get_online_features(purchase_v1).to_dict() | {b50:.3f} | {b99:.3f} |")
    print(f"| shopscore score() (lookup + model) | {s50:.3f} | {s99:.3f} |")
    print(f"| ratio score / bare | {s50 / b50:.2f}x | {s99 / b99:.2f}x |")

    print(f"\n### score_many throughput, online store: {profile}\n")
    print("| batch | bare Feast lookup users/s | score_many users/s | score_many / bare |")
    print("| ---: | ---: | ---: | ---: |")
    for batch in (1, 100, 1000):
        lookup = throughput(bare, users, batch, args.seconds)
        scored = throughput(scorer.score_many, users, batch, args.seconds)
        print(f"| {batch} | {lookup:,.0f} | {scored:,.0f} | {scored / lookup:.2f} |")
    scorer.close()


if __name__ == "__main__":
    main()
