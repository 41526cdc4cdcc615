"""What routes depend on, each injected on its own: the scorer (reads), the model registry (writes, listings)
and the telemetry. All three live on `app.state`, set by the app's lifespan."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from registry.model_registry.store import ModelRegistry
from registry.scoring import Scorer
from registry.serving.errors import NotReady
from registry.serving.schemas import AliasName, ModelName
from registry.serving.telemetry import Telemetry


def get_scorer(request: Request) -> Scorer:
    scorer: Scorer | None = getattr(request.app.state, "scorer", None)
    if scorer is None:
        raise NotReady("the scorer is not loaded yet; retry when GET /readyz answers 200")
    return scorer


def get_registry(request: Request) -> ModelRegistry:
    registry: ModelRegistry | None = getattr(request.app.state, "registry", None)
    if registry is None:
        raise NotReady("the model registry is not open yet; retry when GET /readyz answers 200")
    return registry


def get_telemetry(request: Request) -> Telemetry:
    return request.app.state.telemetry


ScorerDep = Annotated[Scorer, Depends(get_scorer)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
TelemetryDep = Annotated[Telemetry, Depends(get_telemetry)]
ModelQuery = Annotated[ModelName, Query()]
AliasQuery = Annotated[AliasName, Query()]
