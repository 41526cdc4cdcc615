"""What scoring returns (`Score`, `OnlineFeatures`) and the one check every user id passes first."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from registry.modeling.tasks import CategoryProbability

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class InvalidUserId(ValueError):
    """A user id that is not an integer (the `user` entity's join key is INT64)."""


def parse_user_id(user_id: object) -> int:
    if isinstance(user_id, bool):
        raise InvalidUserId(f"user id {user_id!r} is a boolean; pass an integer user id")
    if isinstance(user_id, (int, np.integer)):
        value = int(user_id)
    elif isinstance(user_id, str) and user_id.strip().lstrip("-").isdigit() and user_id.strip().isascii():
        value = int(user_id.strip())
    else:
        raise InvalidUserId(f"user id {user_id!r} is not an integer; user ids are int64 in this feature repo")
    if not INT64_MIN <= value <= INT64_MAX:
        raise InvalidUserId(
            f"user id {user_id!r} does not fit in int64; user ids are int64 in this feature repo"
        )
    return value


@dataclass(frozen=True)
class Score:
    """One user's answer: `value`, of the kind the model's head declares (`answer` names it, e.g.
    `probability`, `expected_spend`, `top_categories`, or a plugin's own such as `churn_probability`)."""

    user_id: int
    model: str
    version: int
    # The alias that answered: the requested one, or the one a traffic split chose (registry.scoring.routing).
    alias: str
    feature_service: str
    # Seconds between the features' snapshot time and now; None when the user has no online features.
    feature_age_seconds: float | None
    # Features exist but are older than their view's TTL, so they were ignored, as training ignores them: the
    # score is the model's answer for a user with no recent activity.
    stale: bool
    # The online store has nothing for this user: the score is the model's answer for a user with no
    # activity at all.
    cold_start: bool
    # The head plugin behind the answer, the answer's name and its value (a number, or a tuple of
    # CategoryProbability for ranked categories).
    head: str
    answer: str
    value: float | tuple[CategoryProbability, ...]

    def _as(self, answer: str) -> Any:
        return self.value if self.answer == answer else None

    # Conveniences for the built-in heads' answers (None when the model answers something else).
    @property
    def probability(self) -> float | None:
        return self._as("probability")

    @property
    def expected_spend(self) -> float | None:
        return self._as("expected_spend")

    @property
    def top_categories(self) -> tuple[CategoryProbability, ...] | None:
        return self._as("top_categories")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every field, with the value also under the answer's own name (`"probability": 0.3`)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if isinstance(self.value, tuple):  # ranked categories: JSON objects, not bare pairs
            out["value"] = [c._asdict() for c in self.value]
        out[self.answer] = out["value"]
        return out


@dataclass(frozen=True)
class OnlineFeatures:
    """One user's online features as the model version behind an alias reads them (stale values are None)."""

    user_id: int
    model: str
    version: int
    alias: str
    feature_service: str
    features: dict[str, float | list | str | None]
    feature_age_seconds: float | None
    stale: bool
    cold_start: bool


def feature_value(value: object) -> float | list | str | None:
    """A feature as JSON wants it: None when absent, lists as lists, numbers as floats."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (list, str)):
        return value
    return float(value)  # type: ignore[arg-type]
