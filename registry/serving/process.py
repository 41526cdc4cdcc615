"""Tuning of a serving process: one inference thread, and a frozen heap after warm-up."""

from __future__ import annotations

import gc

import torch


def set_inference_threads(threads: int | None = None) -> None:
    """Intra-op threads for CPU inference. The serving models are small, so a thread pool mostly adds
    hand-off latency; one thread per process (scale by replicas) is the default for serving."""
    torch.set_num_threads(threads or 1)


def freeze_heap() -> None:
    """Exempt every object alive now (Feast's registry, torch modules: ~500k objects) from garbage
    collection; call once after warm-up, in a serving process.

    A batch read allocates tens of thousands of short-lived row tuples, and the collections they trigger walk
    the whole heap; freezing what warm-up created keeps those collections short (docs/results/serving.md has
    the figures). Objects created later are collected as usual."""
    gc.collect()
    gc.freeze()
