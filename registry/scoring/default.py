"""The process-wide Scorer behind `registry.score()` / `registry.score_many()` (settings from the
environment), built on first use."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from registry.scoring.results import Score
from registry.scoring.routing import ServingConfig
from registry.scoring.scorer import Scorer

_default: Scorer | None = None
_lock = threading.Lock()


def default_scorer() -> Scorer:
    global _default
    with _lock:
        if _default is None:
            _default = Scorer(serving=ServingConfig.from_env())
        return _default


def score(user_id: object, *, model: str = "purchase", alias: str = "production") -> Score:
    """Score one user with the model version that `alias` points to (settings from the environment)."""
    return default_scorer().score(user_id, model=model, alias=alias)


def score_many(
    user_ids: Sequence[object], *, model: str = "purchase", alias: str = "production"
) -> list[Score]:
    return default_scorer().score_many(user_ids, model=model, alias=alias)
