"""Serving: routing configuration (traffic split, shadow alias), the HTTP app and its telemetry.

Scoring itself lives in `registry.scoring` (the only scoring code); this package only decides which alias
answers and exposes `score()` over HTTP. Importing this package does not import FastAPI: the HTTP app is
in `registry.serving.app`.
"""

from registry.serving.config import ModelRoute, ServingConfig

__all__ = ["ModelRoute", "ServingConfig"]
