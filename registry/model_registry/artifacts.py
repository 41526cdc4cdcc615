"""Model artifacts: copy a saved model directory into the artifact root, and hand it back verified.

The artifact root is a local directory by default (`Settings.artifacts_root`) or any fsspec URL (s3://,
gs://, memory://). Layout:

    <root>/<model>/<version>/config.json, model.safetensors, ...   published artifacts
    <root>/.tmp/<unix time>-<uuid>/...                             staging; orphans are removed by `gc`

A copy is written under `.tmp` first and renamed to its final place only when complete, so a reader never
sees half a directory at a published path. The registry commits a version row only after that rename, in
the same transaction that allocated the version number (see `registry.model_registry.store`).

The sha256 of an artifact is the sha256 of its manifest: one line `<sha256 of file>  <relative path>\\n` per
file, sorted by path (the format of `sha256sum`). It is recorded in the registry and checked on every fetch.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

from registry.model_registry.errors import ArtifactCorrupted, ArtifactMissing, InvalidArtifact

REQUIRED_FILES = ("config.json", "model.safetensors")
STAGING = ".tmp"
_CHUNK = 1 << 20


def _url_to_fs(url: str | os.PathLike[str]) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, path = fsspec.core.url_to_fs(str(url))
    return fs, path.rstrip("/")


def _manifest_sha256(file_hashes: dict[str, str]) -> str:
    manifest = "".join(f"{digest}  {rel}\n" for rel, digest in sorted(file_hashes.items()))
    return hashlib.sha256(manifest.encode()).hexdigest()


def _relative_files(fs: fsspec.AbstractFileSystem, path: str) -> list[str]:
    return sorted(posixpath.relpath(f, path) for f in fs.find(path) if not fs.isdir(f))


def directory_sha256(path: str | os.PathLike[str]) -> str:
    """The artifact hash of a directory (local path or fsspec URL)."""
    fs, root = _url_to_fs(path)
    hashes = {}
    for rel in _relative_files(fs, root):
        digest = hashlib.sha256()
        with fs.open(posixpath.join(root, rel), "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        hashes[rel] = digest.hexdigest()
    return _manifest_sha256(hashes)


def validate_model_dir(src_dir: str | os.PathLike[str]) -> Path:
    """Refuse anything but a local directory holding the files `save_pretrained` writes."""
    src = Path(src_dir)
    if not src.is_dir():
        raise InvalidArtifact(
            f"model directory {src} does not exist or is not a directory; pass the directory the model's "
            f"save_pretrained() wrote"
        )
    missing = [name for name in REQUIRED_FILES if not (src / name).is_file()]
    if missing:
        raise InvalidArtifact(
            f"model directory {src} lacks {', '.join(missing)}; save the model with save_pretrained(dir) "
            f"(config.json + model.safetensors) before registering it"
        )
    return src


@dataclass
class StagedArtifact:
    """A complete copy under `<root>/.tmp`, not yet published. `publish` renames it into place."""

    fs: fsspec.AbstractFileSystem
    root: str
    path: str
    sha256: str

    def final_path(self, model: str, version: int) -> str:
        return posixpath.join(self.root, model, str(version))

    def publish(self, model: str, version: int) -> str:
        """Rename into `<root>/<model>/<version>` and return its URI.

        Call only while holding the registry's lock on the model's version counter: a directory already at
        the final path can then only be an orphan of a registration that crashed before committing (the
        number was never used), and it is safe to replace.
        """
        final = self.final_path(model, version)
        if self.fs.exists(final):
            self.fs.rm(final, recursive=True)
        self.fs.makedirs(posixpath.dirname(final), exist_ok=True)
        if isinstance(self.fs, LocalFileSystem):
            os.rename(self.path, final)  # atomic on one filesystem, which .tmp under the root guarantees
        else:
            self.fs.mv(self.path, final, recursive=True)
        return artifact_uri(self.fs, final)

    def discard(self) -> None:
        if self.fs.exists(self.path):
            self.fs.rm(self.path, recursive=True)


def artifact_uri(fs: fsspec.AbstractFileSystem, path: str) -> str:
    return fs.unstrip_protocol(path)


def stage_artifact(src_dir: str | os.PathLike[str], root: str | os.PathLike[str]) -> StagedArtifact:
    """Copy a model directory to a fresh staging place under the artifact root, hashing while copying."""
    src = validate_model_dir(src_dir)
    fs, root_path = _url_to_fs(root)
    staging = posixpath.join(root_path, STAGING, f"{int(time.time())}-{uuid.uuid4().hex}")
    fs.makedirs(staging, exist_ok=True)
    hashes: dict[str, str] = {}
    try:
        for file in sorted(p for p in src.rglob("*") if p.is_file()):
            rel = file.relative_to(src).as_posix()
            target = posixpath.join(staging, rel)
            fs.makedirs(posixpath.dirname(target), exist_ok=True)
            digest = hashlib.sha256()
            with file.open("rb") as reader, fs.open(target, "wb") as writer:
                while chunk := reader.read(_CHUNK):
                    digest.update(chunk)
                    writer.write(chunk)
            hashes[rel] = digest.hexdigest()
    except BaseException:
        fs.rm(staging, recursive=True)
        raise
    return StagedArtifact(fs=fs, root=root_path, path=staging, sha256=_manifest_sha256(hashes))


def store_artifact(
    src_dir: str | os.PathLike[str], root: str | os.PathLike[str], model: str, version: int
) -> tuple[str, str]:
    """Copy `src_dir` to `<root>/<model>/<version>` (staged, then renamed). Returns (uri, sha256).

    This does not touch the registry: `ModelRegistry.register_version` is what allocates the number and
    records the artifact; use this directly only for tooling around artifacts.
    """
    staged = stage_artifact(src_dir, root)
    return staged.publish(model, version), staged.sha256


def fetch_artifact(uri: str, sha256: str, *, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """A local directory holding the artifact at `uri`, verified against `sha256`.

    A local artifact is verified in place; a remote one is downloaded into `cache_dir/<sha256>` (default
    `$SHOPSCORE_HOME/cache/artifacts`) and verified there. Raises ArtifactMissing or ArtifactCorrupted.
    """
    fs, path = _url_to_fs(uri)
    if not fs.isdir(path):
        raise ArtifactMissing(
            f"artifact {uri} is missing (moved or deleted after registration); restore it from a backup, "
            f"or archive this version (`shopscore models archive`) and register the model again"
        )
    if isinstance(fs, LocalFileSystem):
        _verify(uri, directory_sha256(path), sha256)
        return Path(path)
    if cache_dir is None:
        from registry.settings import Settings

        cache_dir = Settings.from_env().home / "cache" / "artifacts"
    cached = Path(cache_dir) / sha256
    if cached.is_dir() and directory_sha256(cached) == sha256:
        return cached
    download = Path(cache_dir) / STAGING / uuid.uuid4().hex
    download.parent.mkdir(parents=True, exist_ok=True)
    fs.get(path + "/", str(download), recursive=True)
    _verify(uri, directory_sha256(download), sha256)
    if cached.exists():
        _rmtree(cached)
    os.rename(download, cached)
    return cached


def _verify(uri: str, actual: str, expected: str) -> None:
    if actual != expected:
        raise ArtifactCorrupted(
            f"artifact {uri} hashes to {actual} but the registry recorded {expected}: its files were changed "
            f"or damaged after registration. Restore it from a backup, or archive this version "
            f"(`shopscore models archive`) and register the model again"
        )


def _rmtree(path: Path) -> None:
    LocalFileSystem().rm(str(path), recursive=True)


def _modified(fs: fsspec.AbstractFileSystem, path: str) -> float | None:
    try:
        return fs.modified(path).timestamp()
    except (NotImplementedError, FileNotFoundError, AttributeError):
        return None


def gc_artifacts(
    root: str | os.PathLike[str], referenced: Iterable[str] | None = None, *, older_than_s: float = 3600.0
) -> list[str]:
    """Remove staging leftovers and, when `referenced` (every URI the registry points at) is given,
    published directories not in it. Returns the URIs removed.

    Only things older than `older_than_s` go: a registration in progress has a staging directory, or a
    published one whose row is not committed yet, for a few seconds; an hour of grace keeps them safe.
    """
    fs, root_path = _url_to_fs(root)
    if not fs.isdir(root_path):
        return []
    candidates = _children(fs, posixpath.join(root_path, STAGING))
    if referenced is not None:
        keep = set(referenced)
        for model_dir in _children(fs, root_path):
            if posixpath.basename(model_dir) != STAGING:
                candidates += [p for p in _children(fs, model_dir) if artifact_uri(fs, p) not in keep]
    cutoff = time.time() - older_than_s
    removed = []
    for path in candidates:
        modified = _modified(fs, path)
        if modified is not None and modified > cutoff:
            continue
        fs.rm(path, recursive=True)
        removed.append(artifact_uri(fs, path))
    return removed


def _children(fs: fsspec.AbstractFileSystem, path: str) -> list[str]:
    """Sub-directories of `path` (none when it does not exist)."""
    if not fs.isdir(path):
        return []
    return [p.rstrip("/") for p in fs.ls(path, detail=False) if fs.isdir(p)]
