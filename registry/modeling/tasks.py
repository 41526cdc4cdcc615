"""What a head declares about its task: the label it learns, the answer it serves, how it is evaluated.

- `LabelWindow` is what a head's `compute_label` sees at one cutoff: the events strictly after the cutoff and
  at most `horizon_days` later, and the users to label. Labels are point in time by construction.
- `Answer` names the served answer and gives its `AnswerType` (its JSON type); `Score`, the CLI and the HTTP
  schema are built from the registered heads' answers, so a new kind of answer needs no core change.
- `Evaluation` is a kind of evaluation (binary, regression, categories): the metrics, the headline metrics
  the report shows with bootstrap intervals, the baselines they are read against, and the metric that
  promotion compares. Metrics are always computed on the head's own target (`Head.target`).
"""

from __future__ import annotations

import keyword
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from registry.modeling.metrics import (
    ERROR_METRICS,
    PROBABILITY_METRICS,
    RANKING_METRICS,
    binary_metrics,
    regression_metrics,
    top_k_accuracy,
)

# --------------------------------------------------------------------------------------------- labels


@dataclass(frozen=True)
class LabelWindow:
    """One cutoff's view for computing labels (`Head.compute_label`)."""

    cutoff: pd.Timestamp
    horizon_days: int
    # int64 ids of the users to label: those with at least one event before the cutoff.
    users: np.ndarray
    # Every event in (cutoff, cutoff + horizon], oldest first, in the canonical event schema
    # (user_id, event_time, event_type, price, quantity, category, ...; docs/plugins.md lists the columns).
    events: pd.DataFrame
    # The head's config dataclass (e.g. a threshold the label depends on).
    config: Any

    def purchases(self) -> pd.DataFrame:
        """The window's purchase events with a `value` column: price x quantity (no price: 0, no quantity: 1)."""
        bought = self.events[self.events["event_type"] == "purchase"]
        value = bought["price"].fillna(0.0) * bought["quantity"].fillna(1).astype("float64")
        return bought.assign(value=value)

    def per_user(self, values: pd.Series, *, missing: Any = np.nan) -> np.ndarray:
        """`values` (indexed by user id) read for each of `users`, in order; `missing` where a user has none."""
        out = pd.Series(self.users).map(values)
        return (out if missing is None else out.fillna(missing)).to_numpy()


# -------------------------------------------------------------------------------------------- answers


class CategoryProbability(NamedTuple):
    """One entry of a ranked-categories answer."""

    category: str
    probability: float


@dataclass(frozen=True)
class AnswerType:
    """The JSON type of an answer: a number (optionally bounded) or ranked categories."""

    name: str
    description: str
    minimum: float | None = None
    maximum: float | None = None
    # A list of CategoryProbability, most likely first, instead of a number.
    ranked_categories: bool = False

    def problem(self, value: Any) -> str | None:
        """Why `value` is not an answer of this type (None: it is)."""
        if self.ranked_categories:
            if not isinstance(value, (list, tuple)) or not all(
                isinstance(c, CategoryProbability) and _finite_number(c.probability) for c in value
            ):
                return f"{value!r} is not a sequence of CategoryProbability(category, probability)"
            return None
        if not _finite_number(value):
            return f"{value!r} is not a finite number"
        if self.minimum is not None and value < self.minimum:
            return f"{value!r} is below the minimum {self.minimum}"
        if self.maximum is not None and value > self.maximum:
            return f"{value!r} is above the maximum {self.maximum}"
        return None

    def to_json(self, value: Any) -> Any:
        if self.ranked_categories:
            return [{"category": c.category, "probability": float(c.probability)} for c in value]
        return float(value)


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


PROBABILITY = AnswerType("probability", "a probability in [0, 1]", minimum=0.0, maximum=1.0)
AMOUNT = AnswerType("amount", "a number >= 0 (an amount or an expected count)", minimum=0.0)
NUMBER = AnswerType("number", "a finite number")
RANKED_CATEGORIES = AnswerType(
    "ranked_categories", "categories with their probabilities, most likely first", ranked_categories=True
)

# Fields every Score has; an answer may not take one of these names.
SCORE_FIELDS = frozenset(
    {"user_id", "model", "version", "alias", "feature_service", "feature_age_seconds", "stale", "cold_start",
     "head", "answer", "value"}
)  # fmt: skip


@dataclass(frozen=True)
class Answer:
    """What a head serves: `name` is the field of a served score that carries it (e.g. `probability`)."""

    name: str
    type: AnswerType
    description: str

    def problem(self) -> str | None:
        """Why this declaration cannot be served (None: it can)."""
        if not self.name.isidentifier() or keyword.iskeyword(self.name) or not self.name.islower():
            return (
                f"answer name {self.name!r} must be a lower-case Python identifier, e.g. 'churn_probability'"
            )
        if self.name in SCORE_FIELDS:
            return f"answer name {self.name!r} is taken by a Score field ({sorted(SCORE_FIELDS)})"
        if not isinstance(self.type, AnswerType):
            return f"answer {self.name!r} has type {self.type!r}; use an AnswerType such as PROBABILITY"
        return None


# ----------------------------------------------------------------------------------------- evaluation

Metric = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class Evaluation:
    """How a kind of head is evaluated. Every function takes (target, predictions): the head's own target
    (`Head.target` as numpy) and what `Head.predict` returned."""

    name: str
    metrics: Callable[[np.ndarray, np.ndarray], dict[str, float]]
    # Shown in the report with 95% bootstrap intervals, next to the baselines'.
    headline: Mapping[str, Metric]
    # Which metric promotion compares (as `test_<name>`), and in which direction it improves.
    promotion_metric: str
    greater_is_better: bool
    # (validation targets, test predictions) -> {baseline name: predictions shaped like the test ones}.
    baselines: Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]] = field(repr=False)


def _mean_baseline(reference: np.ndarray, like: np.ndarray) -> dict[str, np.ndarray]:
    mean = float(np.mean(reference)) if len(reference) else 0.0
    return {"validation mean": np.full(len(like), mean)}


def _amount_baselines(reference: np.ndarray, like: np.ndarray) -> dict[str, np.ndarray]:
    return {**_mean_baseline(reference, like), "zero": np.zeros(len(like))}


def _majority_class(reference: np.ndarray, like: np.ndarray) -> dict[str, np.ndarray]:
    known = np.asarray(reference, dtype="int64")
    known = known[known >= 0]
    out = np.zeros(like.shape)
    if len(known):
        out[:, np.bincount(known).argmax()] = 1.0
    return {"majority class": out}


def _category_metrics(target: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    target = np.asarray(target, dtype="int64")
    return {
        "n": float(len(target)),
        "classes": float(predictions.shape[1]) if predictions.ndim == 2 else float("nan"),
        "unknown_rate": float((target < 0).mean()) if len(target) else float("nan"),
        "top1_accuracy": top_k_accuracy(target, predictions, 1),
        "top3_accuracy": top_k_accuracy(target, predictions, 3),
    }


BINARY = Evaluation(
    name="binary",
    metrics=binary_metrics,
    headline={
        "roc_auc": RANKING_METRICS["roc_auc"],
        "pr_auc": RANKING_METRICS["pr_auc"],
        "log_loss": PROBABILITY_METRICS["log_loss"],
    },  # fmt: skip
    promotion_metric="pr_auc",
    greater_is_better=True,
    baselines=lambda reference, like: {"base rate": _mean_baseline(reference, like)["validation mean"]},
)
REGRESSION = Evaluation(
    name="regression",
    metrics=regression_metrics,
    headline=ERROR_METRICS,
    promotion_metric="mae",
    greater_is_better=False,
    baselines=_amount_baselines,
)
CATEGORIES = Evaluation(
    name="categories",
    metrics=_category_metrics,
    headline={
        "top1_accuracy": lambda y, p: top_k_accuracy(y, p, 1),
        "top3_accuracy": lambda y, p: top_k_accuracy(y, p, 3),
    },
    promotion_metric="top1_accuracy",
    greater_is_better=True,
    baselines=_majority_class,
)
EVALUATIONS = {e.name: e for e in (BINARY, REGRESSION, CATEGORIES)}
