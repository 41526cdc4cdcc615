"""GET /v1/features/{user_id}: the online features a model version reads for a user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from registry.serving.deps import AliasQuery, ModelQuery, ScorerDep
from registry.serving.errors import RESPONSES
from registry.serving.schemas import FeaturesOut

router = APIRouter(tags=["features"], responses=RESPONSES)


@router.get("/v1/features/{user_id}", response_model=FeaturesOut)
def features(
    user_id: Annotated[str, Path(max_length=32, description="The shop's integer (int64) user id.")],
    scorer: ScorerDep,
    model: ModelQuery = "purchase",
    alias: AliasQuery = "production",
) -> FeaturesOut:
    """Online features of one user, by the FeatureService of the version `alias` points at."""
    return FeaturesOut(**scorer.features(user_id, model=model, alias=alias).__dict__)
