"""What `shopscore train` trains on when the user names nothing, derived from the events themselves.

A newcomer's first `train` on their own shop must work without reading the source, so each default is
chosen from the data and said out loud (`TrainingPlan.notes`):

- feature service: `purchase_v1` (windows over recent views, carts, searches) for clickstream data;
  `purchase_lifetime_v1` (whole-history recency, frequency and spend) when the events hold only purchases,
  as order logs like CDNOW do: their customers are quiet for months, and `purchase_v1` forgets a user 30
  days after their last event.
- horizon: the shortest of HORIZON_CHOICES_DAYS in which at least MIN_POSITIVE_RATE of the users buy, among
  those the events' time span can hold, so the label has positives to learn from.
- cutoffs: `Splits.default_for`, spread over the data's own span (at most MAX_TRAIN_CUTOFFS of them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from registry.features.contract import PURCHASE_LIFETIME_SERVICE, PURCHASE_SERVICE
from registry.features.training_set import LabelSpec, compute_labels, entity_rows
from registry.modeling.training import SplitError, Splits

CLICKSTREAM_SERVICE = PURCHASE_SERVICE
PURCHASES_ONLY_SERVICE = PURCHASE_LIFETIME_SERVICE
HORIZON_CHOICES_DAYS = (7, 14, 30, 60, 90)
MIN_POSITIVE_RATE = 0.10


@dataclass(frozen=True)
class TrainingPlan:
    feature_service: str
    splits: Splits
    notes: list[str] = field(default_factory=list)


def plan_training(
    events: pd.DataFrame,
    *,
    feature_service: str | None = None,
    horizon_days: int | None = None,
    splits: Splits | None = None,
) -> TrainingPlan:
    """Fill in what the caller left as None from the events; `notes` say what was chosen and why."""
    notes = []
    if feature_service is None:
        feature_service, why = default_feature_service(events)
        notes.append(f"feature service {feature_service} ({why}; --feature-service to choose)")
    if splits is None:
        first, last = events["event_time"].min(), events["event_time"].max()
        if horizon_days is None:
            horizon_days, why = default_horizon(events)
            notes.append(f"horizon {horizon_days} days ({why}; --horizon-days to choose)")
        splits = Splits.default_for(first, last, horizon_days)
        notes.append(f"cutoffs {splits.describe()} (from the events' span; --train-cutoffs to choose)")
    elif horizon_days is not None and splits.horizon_days != horizon_days:
        raise SplitError(f"splits use horizon {splits.horizon_days}d but {horizon_days}d was asked for")
    return TrainingPlan(feature_service, splits, notes)


def default_feature_service(events: pd.DataFrame) -> tuple[str, str]:
    if (events["event_type"] == "purchase").all():
        return PURCHASES_ONLY_SERVICE, "the events are all purchases"
    return CLICKSTREAM_SERVICE, "the events hold browsing as well as purchases"


def default_horizon(events: pd.DataFrame) -> tuple[int, str]:
    """The shortest horizon with enough positives among those the span holds; see the module docstring."""
    first, last = events["event_time"].min(), events["event_time"].max()
    fitting = [h for h in HORIZON_CHOICES_DAYS if Splits.fits(first, last, h)]
    if not fitting:
        # The shortest choice's own error says how much history is needed.
        Splits.default_for(first, last, HORIZON_CHOICES_DAYS[0])
    rates = {h: positive_rate(events, h) for h in fitting}
    for h in fitting:
        if rates[h] >= MIN_POSITIVE_RATE:
            return h, f"the shortest in which at least {MIN_POSITIVE_RATE:.0%} of users buy: {rates[h]:.1%}"
    best = max(fitting, key=lambda h: rates[h])
    return best, f"no horizon the data holds reaches {MIN_POSITIVE_RATE:.0%} buyers; {best} days has the most"


def positive_rate(events: pd.DataFrame, horizon_days: int) -> float:
    """The share of users with history who buy within the horizon after the test cutoff
    `Splits.default_for` would use for it (whatever head is trained, a horizon without buyers teaches little)."""
    cutoff = events["event_time"].max().floor("D") + pd.Timedelta(days=1 - horizon_days)
    rows = entity_rows(events, [cutoff])
    if rows.empty:
        return 0.0
    buys = LabelSpec("buys", lambda window: np.isin(window.users, window.purchases()["user_id"]))
    return float(compute_labels(events, rows, horizon_days, buys).mean())
