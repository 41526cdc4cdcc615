"""Encoder throughput benchmark: train each encoder (mlp, sequence, tiny text) with the purchase head for a
fixed number of steps on a generated feature frame and print a markdown table.

    .venv/bin/python -m bench.perf.encoders                         # 30 steps of 256 rows each
    .venv/bin/python -m bench.perf.encoders --steps 10 --threads 1  # quick, on a loaded machine

The frame has the aggregate columns of `user_activity` (random counts) and the `user_sequence` columns
at full length (50 events, 5 queries), so the sequence and text encoders see production-sized inputs.
Uses CUDA with bf16 autocast when torch sees a GPU, otherwise the CPU. Columns:
- featurize rows/s: `Encoder.featurize` on the whole frame (rendering + tokenising for `text`),
- train samples/s: forward + backward + AdamW step, after `--warmup` untimed steps,
- infer samples/s: forward under `torch.inference_mode`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from registry.features.contract import (
    CATEGORY_BUCKETS,
    PRICE_BUCKETS,
    QUERY_COUNT,
    SEQUENCE_LENGTH,
    feature_columns,
)
from registry.modeling.shop_model import ShopModel
from registry.modeling.training import resolve_device

WORDS = np.array(
    ["nike", "air", "max", "iphone", "15", "pro", "case", "red", "shoes", "sale", "laptop", "usb"]
)


def generate_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        rng.poisson(3.0, (rows, len(feature_columns()))).astype("float64"), columns=feature_columns()
    )
    n = SEQUENCE_LENGTH
    frame["seq_event_type"] = list(rng.integers(1, 7, (rows, n)))
    frame["seq_category"] = list(rng.integers(1, CATEGORY_BUCKETS, (rows, n)))
    frame["seq_price_bucket"] = list(rng.integers(0, PRICE_BUCKETS, (rows, n)))
    frame["seq_seconds_since_prev"] = list(rng.integers(1, 500_000, (rows, n)))
    frame["last_queries"] = [
        [" ".join(rng.choice(WORDS, 3)) for _ in range(QUERY_COUNT)] for _ in range(rows)
    ]
    frame["label_purchase"] = rng.integers(0, 2, rows).astype("float32")
    return frame


def encoders() -> dict[str, dict]:
    return {
        "mlp": {"features": feature_columns()},
        "sequence": {},  # SequenceConfig defaults: max_len 50, d_model 64, 2 layers, 4 heads
        "text (tiny)": {},  # TextConfig defaults: BERT hidden 64, 2 layers, 128 tokens
    }


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_one(name: str, config: dict, frame: pd.DataFrame, args: argparse.Namespace, device: torch.device):
    encoder_name = name.split()[0]
    model = ShopModel.build(encoder_name, config, "purchase", {"horizon_days": 7}, feature_service="bench")
    model.encoder.fit(frame)
    start = time.perf_counter()
    batch = model.encoder.featurize(frame)
    featurize_s = time.perf_counter() - start
    batch = {k: v.to(device) for k, v in batch.items()}
    target = model.head.target(frame).to(device)
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    rows, bs = len(frame), args.batch_size

    def step(i: int) -> None:
        idx = torch.arange(i * bs, (i + 1) * bs, device=device) % rows
        with _autocast(device):
            _, loss = model({k: v[idx] for k, v in batch.items()}, target[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for i in range(args.warmup):
        step(i)
    _sync(device)
    start = time.perf_counter()
    for i in range(args.steps):
        step(args.warmup + i)
    _sync(device)
    train_s = time.perf_counter() - start

    model.eval()
    with torch.inference_mode(), _autocast(device):
        model({k: v[:bs] for k, v in batch.items()})  # warm-up
        _sync(device)
        start = time.perf_counter()
        for i in range(args.steps):
            idx = torch.arange(i * bs, (i + 1) * bs, device=device) % rows
            model({k: v[idx] for k, v in batch.items()})
        _sync(device)
        infer_s = time.perf_counter() - start
    params = sum(p.numel() for p in model.parameters())
    return params, rows / featurize_s, args.steps * bs / train_s, args.steps * bs / infer_s


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=4096, help="rows in the generated frame")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30, help="timed training (and inference) steps")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = resolve_device(args.device)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    frame = generate_frame(args.rows)

    print(
        f"device: {device_name} ({device.type}{', bf16 autocast' if device.type == 'cuda' else ', float32'})"
    )
    print(
        f"CPU: {_cpu_name()}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}, "
        f"torch {torch.__version__}, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print(
        f"batch {args.batch_size}, {args.steps} timed steps after {args.warmup} warm-up, {args.rows} rows\n"
    )
    print("| encoder | params | device | featurize rows/s | train samples/s | infer samples/s |")
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    for name, config in encoders().items():
        params, featurize, train, infer = bench_one(name, config, frame, args, device)
        print(
            f"| {name} | {params:,} | {device_name} | {featurize:,.0f} | {train:,.0f} | {infer:,.0f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
