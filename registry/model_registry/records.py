"""The plain, frozen values the registry hands out. They never hold a session or an ORM row, so they can be
passed between threads, cached by the scorer and printed as JSON (`to_dict()`) after the transaction ended.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def _jsonable(value: Any) -> Any:
    if isinstance(value, _Record):
        return value.to_dict()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


class _Record:
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes as ISO 8601 strings)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True)
class ModelVersion(_Record):
    """One registered version of a model: where its artifact is, what it was trained on, how it scored."""

    model: str
    version: int
    artifact_uri: str
    sha256: str
    lineage: dict[str, Any]
    metrics: dict[str, float | None]
    params: dict[str, Any]
    status: str  # "ready" or "archived"
    created_at: datetime
    created_by: str | None
    aliases: tuple[str, ...] = ()

    @property
    def feature_service(self) -> str:
        """The Feast FeatureService that training used and serving must use."""
        return str(self.lineage["feature_service"])

    @property
    def horizon_days(self) -> int:
        return int(self.lineage["horizon_days"])


@dataclass(frozen=True)
class RegisteredModel(_Record):
    """A model name with a summary of its versions."""

    name: str
    created_at: datetime
    latest_version: int | None
    version_count: int
    aliases: dict[str, int] = field(default_factory=dict)  # alias -> version


@dataclass(frozen=True)
class AliasEvent(_Record):
    """One audited alias move. `from_version` is None when the alias was created by this move."""

    id: int
    model: str
    alias: str
    from_version: int | None
    to_version: int
    action: str  # "set" or "rollback"
    actor: str
    reason: str
    forced: bool
    created_at: datetime


@dataclass(frozen=True)
class FieldDiff(_Record):
    """One metric, param or lineage key of two versions side by side."""

    name: str
    left: Any
    right: Any
    changed: bool
    delta: float | None = None  # right - left, for numbers only


@dataclass(frozen=True)
class Comparison(_Record):
    model: str
    left: int
    right: int
    metrics: tuple[FieldDiff, ...]
    params: tuple[FieldDiff, ...]
    lineage: tuple[FieldDiff, ...]
