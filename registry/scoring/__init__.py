"""Scoring: `Scorer` (the facade), composed of an alias cache, a model cache, the online reader
(registry.features.online), routing and shadow scoring, each its own module.

- results.py      Score, OnlineFeatures, parse_user_id
- alias_cache.py  alias -> version, polled from the model registry
- model_cache.py  one loaded, verified model per version
- routing.py      traffic split and shadow alias per model (ServingConfig)
- shadow.py       shadow scoring off the request path
- scorer.py       Scorer: score() / score_many()
- default.py      the process-wide Scorer behind registry.score()
"""

from registry.scoring.default import default_scorer, score, score_many
from registry.scoring.results import INT64_MAX, INT64_MIN, InvalidUserId, OnlineFeatures, Score, parse_user_id
from registry.scoring.routing import ModelRoute, ServingConfig, ServingConfigError
from registry.scoring.scorer import Scorer

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "InvalidUserId",
    "ModelRoute",
    "OnlineFeatures",
    "Score",
    "Scorer",
    "ServingConfig",
    "ServingConfigError",
    "default_scorer",
    "parse_user_id",
    "score",
    "score_many",
]
