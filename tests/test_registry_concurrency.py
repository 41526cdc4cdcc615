"""16 processes at once against one model, on SQLite and PostgreSQL: version numbers come out 1..16 with no
gap or duplicate, and concurrent alias moves serialise into one holder and an unbroken audit chain.

The 16 spawned workers are started once for the module and reused by every test (starting a Python
process is most of the cost). Each task waits on a shared barrier, so all 16 really start together.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from registry_support import init_worker, make_lineage, move_alias, register, register_one

from registry.model_registry.artifacts import fetch_artifact
from registry.model_registry.store import ModelRegistry

pytest_plugins = ["registry_fixtures"]

WORKERS = 16


@pytest.fixture(scope="module")
def pool() -> Iterator[Any]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WORKERS)
    with context.Pool(WORKERS, initializer=init_worker, initargs=(barrier,)) as workers:
        yield workers


def test_concurrent_registrations_get_versions_1_to_16(
    pool: Any, registry: ModelRegistry, registry_url: str, artifacts_root: Path, model_dir
) -> None:
    source = str(model_dir())
    jobs = [(registry_url, str(artifacts_root), "busy", source, make_lineage())] * WORKERS
    numbers = pool.starmap(register_one, jobs, chunksize=1)

    assert sorted(numbers) == list(range(1, WORKERS + 1))
    versions = registry.versions("busy")
    assert [v.version for v in versions] == list(range(1, WORKERS + 1))
    assert len({v.params["worker"] for v in versions}) == WORKERS  # one version per process
    assert len({v.artifact_uri for v in versions}) == WORKERS
    for version in versions:  # every row has its complete artifact
        fetch_artifact(version.artifact_uri, version.sha256)
    assert registry.models()[0].latest_version == WORKERS


def test_concurrent_alias_moves_leave_one_holder_and_an_ordered_log(
    pool: Any, registry: ModelRegistry, registry_url: str, artifacts_root: Path, model_dir
) -> None:
    source = model_dir()
    for _ in range(WORKERS):
        register(registry, "busy", source)
    jobs = [(registry_url, str(artifacts_root), "busy", "staging", v) for v in range(1, WORKERS + 1)]
    event_ids = pool.starmap(move_alias, jobs, chunksize=1)

    events = registry.alias_events("busy", "staging")
    assert len(events) == WORKERS and sorted(event_ids) == [e.id for e in events]
    assert sorted(e.to_version for e in events) == list(range(1, WORKERS + 1))
    assert events[0].from_version is None
    for previous, event in pairwise(events):  # each move starts where the one before it ended
        assert event.from_version == previous.to_version
    holders = [v.version for v in registry.versions("busy") if "staging" in v.aliases]
    assert holders == [events[-1].to_version]
    assert registry.resolve("busy", "staging").version == events[-1].to_version
