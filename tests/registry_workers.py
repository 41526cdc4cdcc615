"""Functions run in spawned worker processes by the registry concurrency and crash tests.

Kept apart from the test modules so a spawned process imports only this and the registry, not pytest.
"""

from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path
from typing import Any

_barrier: Any = None


def init_worker(barrier: Any) -> None:
    global _barrier
    _barrier = barrier


def _open(url: str, artifacts_root: str) -> Any:
    from registry.db.hooks import bare_plugin_manager
    from registry.db.store import ModelRegistry

    return ModelRegistry.open(url, artifacts_root=artifacts_root, plugin_manager=bare_plugin_manager())


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
