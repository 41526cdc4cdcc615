"""GET /v1/models and POST /v1/models/{model}/aliases/{alias}: the model registry over HTTP."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Header, Path

from registry.model_registry import errors as registry_errors
from registry.model_registry.store import ModelRegistry
from registry.serving.deps import RegistryDep, ScorerDep
from registry.serving.errors import RESPONSES
from registry.serving.schemas import AliasEventOut, AliasMoveIn, AliasName, ModelName, ModelOut

router = APIRouter(tags=["models"], responses=RESPONSES)


@router.get("/v1/models", response_model=list[ModelOut])
def models(registry: RegistryDep) -> list[ModelOut]:
    """Every registered model with its latest version and aliases."""
    return [ModelOut(**m.to_dict()) for m in registry.models()]


@router.post("/v1/models/{model}/aliases/{alias}", response_model=AliasEventOut)
def move_alias(
    model: Annotated[ModelName, Path()],
    alias: Annotated[AliasName, Path()],
    body: AliasMoveIn,
    registry: RegistryDep,
    scorer: ScorerDep,
    x_promoter_token: Annotated[str | None, Header(max_length=512)] = None,
) -> AliasEventOut:
    """Point `alias` at a version, audited; runs the promotion checks for protected aliases.

    Every alias move over HTTP needs the promoter token in the X-Promoter-Token header, protected alias or
    not: the network surface is the wrong place for unauthenticated writes."""
    _require_token(registry, x_promoter_token)
    event = registry.set_alias(
        model,
        alias,
        body.version,
        reason=body.reason,
        actor=body.actor,
        force=body.force,
        token=x_promoter_token,
    )
    scorer.invalidate(model)  # this replica serves the move at once; others within their poll interval
    return AliasEventOut(**event.to_dict())


def _require_token(registry: ModelRegistry, token: str | None) -> None:
    expected = registry.policy.promoter_token
    if expected is None:
        raise registry_errors.AliasProtected(
            "alias moves over HTTP need a promoter token, and this server has none; set "
            "SHOPSCORE_PROMOTER_TOKEN on the server and send it in the X-Promoter-Token header"
        )
    if token is None or not hmac.compare_digest(token.encode(), expected.encode()):
        raise registry_errors.AliasProtected(
            "missing or wrong X-Promoter-Token header; send the promoter token (SHOPSCORE_PROMOTER_TOKEN)"
        )
