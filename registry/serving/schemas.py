"""Request and response bodies of the HTTP API (pydantic), so the OpenAPI spec describes every answer."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import GenericAlias
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, create_model

from registry.modeling.tasks import Answer, AnswerType
from registry.scoring import INT64_MAX, INT64_MIN

UserId = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX, description="The shop's integer (int64) user id.")]
ModelName = Annotated[str, Field(min_length=1, max_length=128, description="Registered model name.")]
AliasName = Annotated[str, Field(min_length=1, max_length=64, description="Alias, e.g. production.")]
MAX_BATCH = 10_000


class CategoryProbabilityOut(BaseModel):
    category: str = Field(description="Category id, as in the events.")
    probability: float


class ScoreBase(BaseModel):
    """One user's answer. `answer` names what `value` is; the value is also under that name."""

    user_id: int
    model: str
    version: int
    alias: str = Field(description="The alias that answered (a traffic split may pick another than asked).")
    feature_service: str
    feature_age_seconds: float | None = Field(
        description="Age of the user's features; null for unknown users."
    )
    stale: bool = Field(description="Features were older than their view's TTL and were ignored.")
    cold_start: bool = Field(description="The online store has nothing for this user.")
    head: str = Field(description="The model's head plugin, e.g. purchase, spend, next_category.")


def _json_type(kind: AnswerType) -> Any:
    if kind.ranked_categories:
        return list[CategoryProbabilityOut]
    return Annotated[float, Field(ge=kind.minimum, le=kind.maximum)]


def score_models(answers: Sequence[Answer]) -> tuple[type[BaseModel], type[BaseModel]]:
    """(ScoreOut, BatchScoreOut) for the answers of the registered heads: `answer` is one of their names,
    `value` one of their types, and each answer also has a field of its own name (null unless it is the one
    given), so the OpenAPI spec documents every answer a model of this deployment can give."""
    by_name: dict[str, Answer | None] = {a.name: a for a in answers}
    if not by_name:  # no head registered: a schema that still validates (nothing will be scored)
        by_name = {"value": None}
    names = tuple(sorted(by_name))
    types = tuple(dict.fromkeys(_json_type(a.type) for a in by_name.values() if a is not None)) or (float,)
    own_fields: dict[str, Any] = {
        name: (_json_type(a.type) | None, Field(default=None, description=a.description))
        for name, a in by_name.items()
        if a is not None
    }
    # Types built at run time from the registered heads: Any to mypy, which checks only static types.
    answer_type: Any = Literal[names]
    value_type: Any = Union[types]  # noqa: UP007
    score_out = create_model(
        "ScoreOut",
        __base__=ScoreBase,
        answer=(answer_type, Field(description="What `value` is: the name of the model's answer.")),
        value=(value_type, Field(description="The answer; its type depends on `answer`.")),
        **own_fields,
    )
    scores_type: Any = GenericAlias(list, (score_out,))  # list[score_out]
    batch_out = create_model("BatchScoreOut", scores=(scores_type, ...))
    return score_out, batch_out


class BatchScoreIn(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    user_ids: list[UserId] = Field(max_length=MAX_BATCH, description=f"Up to {MAX_BATCH} user ids.")
    model: ModelName = "purchase"
    alias: AliasName = "production"


class FeaturesOut(BaseModel):
    user_id: int
    model: str
    version: int
    alias: str
    feature_service: str
    features: dict[str, float | None] = Field(
        description="Feature values as the model reads them (null: absent)."
    )
    feature_age_seconds: float | None
    stale: bool
    cold_start: bool


class ModelOut(BaseModel):
    name: str
    created_at: datetime
    latest_version: int | None
    version_count: int
    aliases: dict[str, int] = Field(description="alias -> version")


class AliasMoveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=2**31 - 1, description="The version the alias should point at.")
    reason: str = Field(min_length=1, max_length=2000, description="Why: kept in the audit log.")
    actor: str | None = Field(default=None, max_length=128, description="Who (default: the server's user).")
    force: bool = Field(default=False, description="Override promotion-check vetoes (recorded as forced).")


class AliasEventOut(BaseModel):
    id: int
    model: str
    alias: str
    from_version: int | None
    to_version: int
    action: str
    actor: str
    reason: str
    forced: bool
    created_at: datetime


class ErrorOut(BaseModel):
    error: str = Field(description="Kind of error, e.g. UnknownAlias.")
    detail: str = Field(description="What went wrong and how to fix it.")
    reasons: list[str] | None = Field(default=None, description="Each promotion-check veto, when refused.")


class HealthOut(BaseModel):
    status: str


class ReadyOut(BaseModel):
    status: str
    detail: str | None = None
    model: str | None = None
    alias: str | None = None
    version: int | None = None
