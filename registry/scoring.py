"""score(user_id): the only scoring code. The CLI and the HTTP API are thin adapters over it.

alias -> model version (registry) -> online features by the version's FeatureService (Feast) -> forward.
Models are loaded once per version, verified against the sha256 recorded in the registry.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from feast import FeatureStore

from registry.artifacts import fetch_artifact
from registry.db.store import ModelRegistry, ModelVersion
from registry.features.online import read_online
from registry.features.store import open_store
from registry.modeling import ShopModel
from registry.settings import Settings
from registry.training import resolve_device


class InvalidUserId(ValueError):
    """A user id that is not an integer (the `user` entity's join key is INT64)."""


@dataclass(frozen=True)
class Score:
    user_id: int
    probability: float
    model: str
    version: int
    alias: str
    feature_service: str
    # Seconds between the features' snapshot time and now; None when the user has no online features.
    feature_age_seconds: float | None
    # Features exist but are older than their view's TTL, so they were ignored, as training ignores them: the
    # score is the model's answer for a user with no recent activity.
    stale: bool
    # The online store has nothing for this user: the score is the model's answer for a user with no
    # activity at all.
    cold_start: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_user_id(user_id: object) -> int:
    if isinstance(user_id, bool):
        raise InvalidUserId(f"user id {user_id!r} is a boolean; pass an integer user id")
    if isinstance(user_id, (int, np.integer)):
        return int(user_id)
    if isinstance(user_id, str) and user_id.strip().lstrip("-").isdigit():
        return int(user_id.strip())
    raise InvalidUserId(f"user id {user_id!r} is not an integer; user ids are int64 in this feature repo")


class Scorer:
    """Holds the registry, the Feast store and the loaded models; safe to share between threads."""

    def __init__(self, settings: Settings | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings or Settings.from_env()
        self.clock = clock  # injectable so tests and replays can score "as of" another time
        self.registry = ModelRegistry.open(settings=self.settings)
        self.store: FeatureStore = open_store(self.settings)
        self.device = resolve_device(self.settings.device)
        self._models: dict[tuple[str, int], ShopModel] = {}
        self._lock = threading.Lock()

    def _model(self, version: ModelVersion) -> ShopModel:
        key = (version.model, version.version)
        with self._lock:
            if key not in self._models:
                directory = fetch_artifact(version.artifact_uri, version.sha256)
                self._models[key] = ShopModel.from_pretrained(directory, device=self.device)
            return self._models[key]

    def _online(self, service_name: str, user_ids: list[int]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """Online features for the users, with NaN where absent or stale, their ages, and a stale mask."""
        read = read_online(self.store, service_name, user_ids, now=self.clock())
        return _numeric(read.frame), read.newest_age(), read.any_expired()

    def score_many(
        self, user_ids: Sequence[object], *, model: str = "purchase", alias: str = "production"
    ) -> list[Score]:
        """Score a batch with one online lookup and one forward pass."""
        ids = [parse_user_id(u) for u in user_ids]
        if not ids:
            return []
        version = self.registry.resolve(model, alias)
        shop_model = self._model(version)
        frame, ages, stale = self._online(shop_model.feature_service, ids)
        probabilities = shop_model.predict_frame(frame)
        unknown = np.isnan(ages)
        return [
            Score(
                user_id=uid,
                probability=float(p),
                model=model,
                version=version.version,
                alias=alias,
                feature_service=shop_model.feature_service,
                feature_age_seconds=None if np.isnan(age) else float(age),
                stale=bool(is_stale),
                cold_start=bool(is_unknown),
            )
            for uid, p, age, is_stale, is_unknown in zip(ids, probabilities, ages, stale, unknown, strict=True)
        ]

    def score(self, user_id: object, *, model: str = "purchase", alias: str = "production") -> Score:
        return self.score_many([user_id], model=model, alias=alias)[0]


def _numeric(frame: pd.DataFrame) -> pd.DataFrame:
    """Scalar number columns as float64 with NaN for missing; list and text columns stay as they are."""
    out = {}
    for name, column in frame.items():
        try:
            out[name] = pd.array(column.tolist(), dtype="Float64").to_numpy(dtype="float64", na_value=np.nan)
        except (TypeError, ValueError):
            out[name] = column
    return pd.DataFrame(out, index=frame.index)


_default: Scorer | None = None
_default_lock = threading.Lock()


def default_scorer() -> Scorer:
    global _default
    with _default_lock:
        if _default is None:
            _default = Scorer()
        return _default


def score(user_id: object, *, model: str = "purchase", alias: str = "production") -> Score:
    """Score one user with the model version that `alias` points to (settings from the environment)."""
    return default_scorer().score(user_id, model=model, alias=alias)


def score_many(user_ids: Sequence[object], *, model: str = "purchase", alias: str = "production") -> list[Score]:
    return default_scorer().score_many(user_ids, model=model, alias=alias)
