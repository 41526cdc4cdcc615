"""Helpers for the registry tests: sample model directories and lineage, and the functions that spawned
worker processes run in the concurrency and crash tests.

It does not import pytest, so a spawned worker imports only this module and the registry.
"""

from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path
from typing import Any

PROMOTER_TOKEN = "test-promoter-token"


def write_model_dir(path: Path, seed: int = 0) -> Path:
    """A directory shaped like save_pretrained's output: config.json + a real safetensors file."""
    import numpy as np  # imported here: spawned workers never write model directories
    from safetensors.numpy import save_file

    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(f'{{"encoder": "mlp", "head": "purchase", "seed": {seed}}}')
    weights = np.random.default_rng(seed).standard_normal((4, 3)).astype(np.float32)
    save_file({"encoder.weight": weights}, str(path / "model.safetensors"))
    return path


def make_lineage(**overrides: Any) -> dict[str, Any]:
    lineage: dict[str, Any] = {
        "feast_project": "shopscore",
        "feature_service": "purchase_mlp_v1",
        "feature_refs": ["user_activity:views_7d", "user_activity:carts_7d"],
        "train_cutoffs": ["2024-01-01T00:00:00+00:00", "2024-01-08T00:00:00+00:00"],
        "valid_cutoff": "2024-01-15T00:00:00+00:00",
        "test_cutoff": "2024-01-22T00:00:00+00:00",
        "horizon_days": 7,
        "data_fingerprint": "sha256:" + "ab" * 16,
        "encoder": "mlp",
        "head": "purchase",
        "plugins": {"mlp": "0.1.0", "purchase": "0.1.0"},
        "device": "cpu",
        "code_version": "0123abcd",
    }
    lineage.update(overrides)
    return lineage


def register(
    registry: Any, model: str, source: Path, *, pr_auc: float = 0.5, **lineage_overrides: Any
) -> Any:
    """Register `source` as the next version of `model` with typical lineage and metrics."""
    return registry.register_version(
        model,
        source,
        lineage=make_lineage(**lineage_overrides),
        metrics={"test_pr_auc": pr_auc, "test_roc_auc": 0.7},
        params={"lr": 0.001, "epochs": 3},
        created_by="tester",
    )


_barrier: Any = None


def init_worker(barrier: Any) -> None:
    global _barrier
    _barrier = barrier


def _open(url: str, artifacts_root: str) -> Any:
    from registry.model_registry.store import ModelRegistry
    from registry.plugin_host import PluginHost

    return ModelRegistry.open(url, artifacts_root=artifacts_root, plugins=PluginHost())


def register_one(url: str, artifacts_root: str, model: str, source: str, lineage: dict[str, Any]) -> int:
    """Wait until every worker is ready, then register one version; returns its number."""
    registry = _open(url, artifacts_root)
    try:
        _barrier.wait(timeout=60)
        version = registry.register_version(
            model,
            source,
            lineage=lineage,
            metrics={"test_pr_auc": 0.5},
            params={"worker": multiprocessing.current_process().name},
        )
        return version.version
    finally:
        registry.close()


def move_alias(url: str, artifacts_root: str, model: str, alias: str, version: int) -> int:
    """Wait until every worker is ready, then point `alias` at `version`; returns the event id."""
    registry = _open(url, artifacts_root)
    try:
        _barrier.wait(timeout=60)
        event = registry.set_alias(
            model, alias, version, reason=f"worker moves to {version}", actor=f"w{version}"
        )
        return event.id
    finally:
        registry.close()


if __name__ == "__main__":
    # Crash-test entry point: `python registry_workers.py URL ARTIFACTS MODEL SOURCE`, with
    # SHOPSCORE_TEST_CRASH_AT naming the step at which register_version exits abruptly.
    import json

    url, artifacts_root, model, source, lineage_json = sys.argv[1:6]
    registry = _open(url, artifacts_root)
    registered = registry.register_version(
        model, Path(source), lineage=json.loads(lineage_json), metrics={"test_pr_auc": 0.5}, params={}
    )
    print(registered.version)
