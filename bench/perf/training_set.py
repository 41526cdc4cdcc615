"""Training-set retrieval (Feast's file offline store) with dask's own tokens and with shopscore's list-column
token (registry/features/dask_tokens.py), side by side in one run on the bench shop.

    .venv/bin/python -m bench.perf.training_set [--cutoffs 3] [--services purchase_v1,purchase_seq_v1]

Each cell is `registry.features.training_set.build_training_set` in a fresh subprocess (the token is a
process-wide dask registration, and each process must pay Feast's own start-up alike): "dask" opens the Feast
store without the token, "shopscore" with it. The two frames must be identical (content fingerprint), or the
benchmark fails. Not a test: numbers depend on the machine; the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from bench.common import load_average, settings_env, shop


def retrieve(service: str, cutoffs: int, with_token: bool) -> dict:
    """Runs in the subprocess: build the training set, return seconds, rows and the frame's fingerprint."""
    import pandas as pd
    from feast import FeatureStore

    from registry.events.schema import read_events
    from registry.features import dask_tokens, feast_store
    from registry.features.training_set import build_training_set, fingerprint
    from registry.settings import Settings

    settings = Settings.from_env()
    events = read_events(settings.events_dir)
    last = events["event_time"].max().floor("D")
    dates = [last - pd.Timedelta(days=7 * (i + 1)) for i in range(cutoffs)]
    if with_token:
        dask_tokens.install()
    store = FeatureStore(config=feast_store.repo_config(settings))  # open_store would install the token
    started = time.perf_counter()
    frame = build_training_set(store, events, service_name=service, cutoffs=dates, horizon_days=7)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": len(frame), "fingerprint": fingerprint(frame)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cutoffs", type=int, default=3, help="weekly cutoffs before the last event day")
    parser.add_argument("--services", default="purchase_v1,purchase_seq_v1")
    parser.add_argument("--child", nargs=2, metavar=("SERVICE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        service, mode = args.child
        print(json.dumps(retrieve(service, args.cutoffs, with_token=mode == "shopscore")))
        return

    settings, _ = shop("")
    env = {**os.environ, **settings_env(settings)}
    print(f"\n### Training-set retrieval, Feast file offline store (load average {load_average()} before)\n")
    print("| service | rows | dask tokens s | shopscore token s | speed-up |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for service in args.services.split(","):
        cells = {}
        for mode in ("dask", "shopscore"):
            child = ["--cutoffs", str(args.cutoffs), "--child", service, mode]
            out = subprocess.run(
                [sys.executable, "-m", __spec__.name, *child],
                env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            cells[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        if cells["dask"]["fingerprint"] != cells["shopscore"]["fingerprint"]:
            raise SystemExit(f"{service}: the two training sets differ; the token changed a result")
        dask_s, ours = cells["dask"]["seconds"], cells["shopscore"]["seconds"]
        print(f"| {service} | {cells['dask']['rows']:,} | {dask_s:.1f} | {ours:.1f} | {dask_s / ours:.1f}x |")
    print(f"\n(load average after: {load_average()})")


if __name__ == "__main__":
    main()
