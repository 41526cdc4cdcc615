"""/healthz, /readyz and /metrics: what an orchestrator and Prometheus ask."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from registry.model_registry import migrate
from registry.scoring import Scorer
from registry.serving.deps import TelemetryDep
from registry.serving.schemas import HealthOut, ReadyOut


def router(ready_model: str, ready_alias: str) -> APIRouter:
    """The ops routes; ready means `ready_alias` of `ready_model` loads."""
    api = APIRouter(tags=["ops"])

    @api.get("/healthz", response_model=HealthOut)
    async def healthz() -> HealthOut:
        """The process is up (liveness)."""
        return HealthOut(status="ok")

    @api.get("/readyz", response_model=ReadyOut, responses={503: {"model": ReadyOut}})
    def readyz(request: Request) -> Any:
        """Ready to score: scorer loaded, registry schema current, the default model's alias loadable."""
        scorer: Scorer | None = request.app.state.scorer
        if scorer is None:
            return JSONResponse(ReadyOut(status="starting", detail="scorer not loaded yet").model_dump(), 503)
        try:
            migrate.require_current(request.app.state.registry.engine)
            version = scorer.warm(ready_model, ready_alias)
        except Exception as exc:
            body = ReadyOut(status="not_ready", detail=str(exc), model=ready_model, alias=ready_alias)
            return JSONResponse(body.model_dump(), 503)
        return ReadyOut(status="ready", model=ready_model, alias=ready_alias, version=version)

    @api.get("/metrics", response_class=Response)
    async def metrics(telemetry: TelemetryDep) -> Response:
        """Prometheus metrics."""
        return Response(telemetry.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return api
