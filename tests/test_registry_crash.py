"""A registration killed at any step leaves no version without its artifact and no artifact counted as a
version; the next registration takes the same number (no gap) and `gc` clears the leftovers.

Each case runs `register_version` in a subprocess that exits abruptly (os._exit, no cleanup) at the step
named by SHOPSCORE_TEST_CRASH_AT.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import registry_support
from registry_support import make_lineage, register

from registry.model_registry.artifacts import STAGING, fetch_artifact
from registry.model_registry.store import ModelRegistry

pytest_plugins = ["registry_fixtures"]

SUPPORT_SCRIPT = Path(registry_support.__file__)


def _register_in_subprocess(url: str, artifacts_root: Path, source: Path, crash_at: str) -> int:
    env = os.environ | {"SHOPSCORE_TEST_CRASH_AT": crash_at}
    command = [sys.executable, str(SUPPORT_SCRIPT), url, str(artifacts_root), "m", str(source)]
    finished = subprocess.run(
        [*command, json.dumps(make_lineage())], env=env, capture_output=True, text=True, timeout=120
    )
    return finished.returncode


# Every step on SQLite; on PostgreSQL the one where the artifact is in place but the row not committed.
CASES = [("sqlite", step) for step in ("staged", "allocated", "published", "committed")] + [
    pytest.param("postgres", "published", marks=pytest.mark.postgres)
]


@pytest.mark.parametrize(("backend", "step"), CASES)
def test_crash_during_registration(
    step: str, registry: ModelRegistry, registry_url: str, artifacts_root: Path, model_dir
) -> None:
    register(registry, "m", model_dir(seed=1))

    assert _register_in_subprocess(registry_url, artifacts_root, model_dir(seed=2), step) == 86

    committed = step == "committed"
    versions = registry.versions("m")
    assert [v.version for v in versions] == ([1, 2] if committed else [1])
    for version in versions:  # every version row has its verified artifact
        fetch_artifact(version.artifact_uri, version.sha256)

    # the next registration continues without a gap, replacing any orphan at its final path
    replacement = register(registry, "m", model_dir(seed=3))
    assert replacement.version == (3 if committed else 2)
    fetch_artifact(replacement.artifact_uri, replacement.sha256)

    removed = registry.gc(older_than_s=0, unreferenced=True)
    if step == "staged":
        assert any(STAGING in uri for uri in removed)
    assert not (artifacts_root / STAGING).exists() or not any((artifacts_root / STAGING).iterdir())
    for version in registry.versions("m"):  # gc never touches what a version points at
        fetch_artifact(version.artifact_uri, version.sha256)


def test_a_failed_transaction_leaves_no_version_and_no_gap(
    registry: ModelRegistry, model_dir, monkeypatch: pytest.MonkeyPatch
) -> None:
    from registry.model_registry.artifacts import StagedArtifact

    register(registry, "m", model_dir())

    def broken_publish(self: StagedArtifact, model: str, version: int) -> str:
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(StagedArtifact, "publish", broken_publish)
        with pytest.raises(OSError, match="disk full"):
            register(registry, "m", model_dir())
    assert [v.version for v in registry.versions("m")] == [1]
    assert register(registry, "m", model_dir()).version == 2
