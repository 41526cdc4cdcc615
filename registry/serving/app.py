"""The HTTP app: `create_app(settings)` wires the routers (registry.serving.routes), the error mapping
(registry.serving.errors) and the metrics middleware around a Scorer and the model registry.

The lifespan opens the Scorer (refusing to start on an out-of-date registry schema, with the command that
fixes it) and warms the default model.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from registry.plugin_host import default_host
from registry.scoring import Scorer, ServingConfig
from registry.serving import errors
from registry.serving.process import freeze_heap, set_inference_threads
from registry.serving.routes import features, models, ops, scores
from registry.serving.schemas import score_models
from registry.serving.telemetry import MetricsMiddleware, Telemetry
from registry.settings import Settings

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    serving: ServingConfig | None = None,
    scorer: Scorer | None = None,
    ready_model: str = "purchase",
    ready_alias: str = "production",
    freeze: bool = False,
) -> FastAPI:
    """The HTTP app. `scorer` may be passed in (tests, embedding); otherwise the lifespan builds one from
    `settings` (default: the environment) and `serving` (default: SHOPSCORE_SERVING_CONFIG). `freeze`:
    registry.serving.process.freeze_heap() after warm-up (a server process; not in tests that build many
    apps)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Opening refuses an out-of-date registry schema (SchemaOutOfDate names `shopscore db upgrade`), so a
        # server never starts on a schema its code does not understand.
        opened = scorer or Scorer(
            settings or Settings.from_env(), serving=serving or ServingConfig.from_env()
        )
        app.state.scorer, app.state.registry = opened, opened.model_registry
        try:
            opened.warm(ready_model, ready_alias)
        except Exception as exc:  # no production model yet is normal for a new registry: /readyz says so
            log.warning("not ready: %s", exc)
        if freeze:
            freeze_heap()
        try:
            yield
        finally:
            if scorer is None:  # close only what this app opened
                opened.close()
            app.state.scorer = app.state.registry = None

    app = FastAPI(
        title="shopscore",
        summary="Purchase-propensity scores from Feast features and registered PyTorch models.",
        version="1",
        lifespan=lifespan,
    )
    app.state.scorer = app.state.registry = None
    app.state.telemetry = Telemetry()
    app.add_middleware(MetricsMiddleware, telemetry=app.state.telemetry)
    errors.install(app)

    # The score schema lists the answers of the heads installed here (registry.modeling.tasks.Answer).
    score_out, batch_score_out = score_models([h.cls.answer for h in default_host().heads.values()])
    app.include_router(scores.router(score_out, batch_score_out))
    app.include_router(features.router)
    app.include_router(models.router)
    app.include_router(ops.router(ready_model, ready_alias))
    return app


def app_from_env() -> FastAPI:
    """`create_app` with settings and serving config from the environment (the uvicorn factory)."""
    set_inference_threads()  # here, not in the CLI: each uvicorn worker process runs this factory
    return create_app(Settings.from_env(), serving=ServingConfig.from_env(), freeze=True)
