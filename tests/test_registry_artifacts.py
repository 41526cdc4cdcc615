"""Artifacts: staged copy + rename into the artifact root (local or any fsspec URL), the manifest hash,
verified fetches and garbage collection of what interrupted registrations leave behind."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from pathlib import Path

import pytest
from registry_support import write_model_dir

from registry.model_registry.artifacts import (
    STAGING,
    directory_sha256,
    fetch_artifact,
    gc_artifacts,
    stage_artifact,
    store_artifact,
)
from registry.model_registry.errors import ArtifactCorrupted, ArtifactMissing, InvalidArtifact


def test_store_artifact_copies_and_hashes(tmp_path: Path) -> None:
    source = write_model_dir(tmp_path / "src")
    (source / "extra").mkdir()
    (source / "extra" / "vocab.txt").write_text("a\nb\n")
    root = tmp_path / "artifacts"

    uri, sha256 = store_artifact(source, root, "purchase", 3)

    assert uri == (root / "purchase" / "3").as_uri()
    assert sha256 == directory_sha256(source) == directory_sha256(root / "purchase" / "3")
    assert (root / "purchase" / "3" / "extra" / "vocab.txt").read_text() == "a\nb\n"
    assert list((root / STAGING).iterdir()) == []  # nothing left in staging
    assert fetch_artifact(uri, sha256) == root / "purchase" / "3"


def test_hash_is_sha256sum_manifest_of_sorted_files(tmp_path: Path) -> None:
    source = write_model_dir(tmp_path / "src")
    lines = "".join(
        f"{hashlib.sha256((source / name).read_bytes()).hexdigest()}  {name}\n"
        for name in ("config.json", "model.safetensors")
    )
    assert directory_sha256(source) == hashlib.sha256(lines.encode()).hexdigest()

    before = directory_sha256(source)
    (source / "config.json").rename(source / "config2.json")
    assert directory_sha256(source) != before  # names count, not only contents


def test_invalid_model_directories_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArtifact, match="does not exist or is not a directory"):
        stage_artifact(tmp_path / "missing", tmp_path / "root")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidArtifact, match="lacks config.json, model.safetensors"):
        stage_artifact(tmp_path / "empty", tmp_path / "root")


def test_fetch_refuses_corrupted_and_missing_artifacts(tmp_path: Path) -> None:
    uri, sha256 = store_artifact(write_model_dir(tmp_path / "src"), tmp_path / "root", "m", 1)
    published = tmp_path / "root" / "m" / "1"
    (published / "stray.bin").write_bytes(b"\0")  # an added file is a change too
    with pytest.raises(ArtifactCorrupted, match="was recorded|registry recorded"):
        fetch_artifact(uri, sha256)
    with pytest.raises(ArtifactMissing, match="is missing"):
        fetch_artifact((tmp_path / "root" / "m" / "2").as_uri(), sha256)


def test_any_fsspec_url_works_as_artifact_root(tmp_path: Path) -> None:
    root = f"memory://shopscore-test-{uuid.uuid4().hex}/artifacts"
    source = write_model_dir(tmp_path / "src", seed=5)
    uri, sha256 = store_artifact(source, root, "m", 1)
    assert uri.startswith("memory://")

    local = fetch_artifact(uri, sha256, cache_dir=tmp_path / "cache")
    assert local == tmp_path / "cache" / sha256
    assert (local / "model.safetensors").read_bytes() == (source / "model.safetensors").read_bytes()
    assert fetch_artifact(uri, sha256, cache_dir=tmp_path / "cache") == local  # served from the cache


def test_publish_replaces_an_orphan_left_by_a_crash(tmp_path: Path) -> None:
    root = tmp_path / "root"
    orphan = root / "m" / "1"
    orphan.mkdir(parents=True)
    (orphan / "half-written").write_text("x")
    uri, sha256 = store_artifact(write_model_dir(tmp_path / "src"), root, "m", 1)
    assert not (orphan / "half-written").exists()
    fetch_artifact(uri, sha256)


def test_gc_removes_only_old_unreferenced_directories(tmp_path: Path) -> None:
    root = tmp_path / "root"
    kept_uri, _ = store_artifact(write_model_dir(tmp_path / "a"), root, "m", 1)
    orphan_uri, _ = store_artifact(write_model_dir(tmp_path / "b"), root, "m", 2)
    stale = stage_artifact(write_model_dir(tmp_path / "c"), root)
    fresh = stage_artifact(write_model_dir(tmp_path / "d"), root)
    an_hour_ago = time.time() - 7200
    for path in (Path(stale.path), root / "m" / "2"):
        os.utime(path, (an_hour_ago, an_hour_ago))

    # by default only staging leftovers go: another registry database may share the root
    assert gc_artifacts(root) == [Path(stale.path).as_uri()]
    assert (root / "m" / "2").is_dir()

    assert gc_artifacts(root, {kept_uri}) == [orphan_uri]
    assert (root / "m" / "1").is_dir() and Path(fresh.path).is_dir()
    assert gc_artifacts(root, {kept_uri}, older_than_s=0) == [Path(fresh.path).as_uri()]
