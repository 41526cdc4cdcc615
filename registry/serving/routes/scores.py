"""POST /v1/score and GET /v1/score/{user_id}. Plain `def` routes: inference is CPU-bound, so FastAPI runs
them in its thread pool instead of blocking the event loop."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel

from registry.scoring import Score
from registry.serving.deps import AliasQuery, ModelQuery, ScorerDep, TelemetryDep
from registry.serving.errors import RESPONSES
from registry.serving.schemas import BatchScoreIn
from registry.serving.telemetry import Telemetry


def _record(telemetry: Telemetry, scores: list[Score]) -> None:
    served: dict[tuple[str, str, int], int] = {}
    for s in scores:
        served[(s.model, s.alias, s.version)] = served.get((s.model, s.alias, s.version), 0) + 1
    for (model, alias, version), users in served.items():
        telemetry.served(model, alias, version, users)


def router(score_out: type[BaseModel], batch_score_out: type[BaseModel]) -> APIRouter:
    """The scoring routes, answering with the score models built from the installed heads' answers."""
    api = APIRouter(tags=["scoring"], responses=RESPONSES)

    @api.get("/v1/score/{user_id}", response_model=score_out)
    def score_one(
        user_id: Annotated[str, Path(max_length=32, description="The shop's integer (int64) user id.")],
        scorer: ScorerDep,
        telemetry: TelemetryDep,
        model: ModelQuery = "purchase",
        alias: AliasQuery = "production",
    ) -> Any:
        """Score one user with the version `alias` points at (or the alias a traffic split picks)."""
        result = scorer.score(user_id, model=model, alias=alias)
        _record(telemetry, [result])
        return score_out(**result.to_dict())

    @api.post("/v1/score", response_model=batch_score_out)
    def score_batch(body: BatchScoreIn, scorer: ScorerDep, telemetry: TelemetryDep) -> Any:
        """Score many users: one online lookup and one forward pass per answering alias."""
        results = scorer.score_many(body.user_ids, model=body.model, alias=body.alias)
        _record(telemetry, results)
        return batch_score_out(scores=[score_out(**s.to_dict()) for s in results])

    return api
