"""Online reads by FeatureService, with each view's event timestamp and feature age.

Feast returns an online value however old it is (the view TTL only applies offline), so serving must check
the age itself: `read_online` masks values older than their view's TTL, exactly as training never sees
them, and reports per view how old the features are so a caller can flag stale data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from feast import FeatureService, FeatureStore

from registry.features.contract import JOIN_KEY


@dataclass(frozen=True)
class ViewColumns:
    """One stored feature view of a service: its name, the columns it returns and its TTL in seconds."""

    name: str
    columns: list[str]
    ttl_seconds: float


@dataclass
class OnlineRead:
    """Feature values for a batch of users plus, per stored view, event times, ages and an expiry mask."""

    frame: pd.DataFrame  # one row per entity row; values older than their view's TTL are missing
    event_time: dict[str, np.ndarray]  # view -> unix seconds of the row read (NaN: nothing stored)
    age_seconds: dict[str, np.ndarray]  # view -> now - event_time (NaN: nothing stored)
    expired: dict[str, np.ndarray]  # view -> stored but older than the view's TTL (so masked)

    def newest_age(self) -> np.ndarray:
        """(B,) age of the freshest view per row; NaN when no view has anything for the row."""
        if not self.age_seconds:
            return np.full(len(self.frame), np.nan)
        return np.fmin.reduce(np.vstack(list(self.age_seconds.values())), axis=0)  # fmin skips NaN

    def any_expired(self) -> np.ndarray:
        return (
            np.logical_or.reduce(list(self.expired.values()))
            if self.expired
            else np.zeros(len(self.frame), bool)
        )


def stored_views(store: FeatureStore, service: FeatureService) -> list[ViewColumns]:
    """The service's views that hold stored rows (on-demand views are computed per request: never stale)."""
    odfv_names = {v.name for v in store.list_on_demand_feature_views()}
    out = []
    for projection in service.feature_view_projections:
        if projection.name in odfv_names:
            continue
        ttl = store.get_feature_view(projection.name).ttl
        seconds = ttl.total_seconds() if ttl and ttl.total_seconds() > 0 else float("inf")
        out.append(ViewColumns(projection.name, [f.name for f in projection.features], seconds))
    return out


def freshness(
    store: FeatureStore, service: FeatureService | str, response: Mapping[str, Sequence[Any]], *, now: float
) -> dict[str, list[float | None]]:
    """Age in seconds of each stored view's features per entity row (None: nothing stored for the row).

    `response` is `get_online_features(...).to_dict(include_event_timestamps=True)`.
    """
    if isinstance(service, str):
        service = store.get_feature_service(service)
    out: dict[str, list[float | None]] = {}
    for view in stored_views(store, service):
        stamps = _event_times(response, view)
        out[view.name] = [None if np.isnan(s) else float(now - s) for s in stamps]
    return out


def _event_times(response: Mapping[str, Sequence[Any]], view: ViewColumns) -> np.ndarray:
    key = f"{view.columns[0]}__ts"
    if key not in response:
        raise KeyError(f"online response has no {key}; read with to_dict(include_event_timestamps=True)")
    stamps = np.array([np.nan if s is None else float(s) for s in response[key]], dtype="float64")
    return np.where(stamps > 0, stamps, np.nan)  # Feast reports 0 where it has no row


def request_fields(store: FeatureStore, service: FeatureService) -> list[str]:
    """Request-source fields the service's on-demand views need (shopscore's carry the request time)."""
    names: list[str] = []
    odfvs = {v.name: v for v in store.list_on_demand_feature_views()}
    for projection in service.feature_view_projections:
        view = odfvs.get(projection.name)
        for source in view.source_request_sources.values() if view else []:
            names += [f.name for f in source.schema if f.name not in names]
    return names


@dataclass(frozen=True)
class ServicePlan:
    """What reading a FeatureService online needs from the Feast registry, looked up once.

    Feast parses its registry protos (with runtime type checks) on every `get_feature_service`,
    `get_feature_view` and `list_on_demand_feature_views` call: ~30 ms per read of `purchase_rt_v1` on the
    file registry, more than the read itself. A caller that reads the same service repeatedly (the Scorer)
    keeps a plan; a re-applied service is picked up by a new plan."""

    service: FeatureService
    names: list[str]  # the response columns, in the service's order
    stored: list[ViewColumns]
    request_fields: list[str]

    @classmethod
    def of(cls, store: FeatureStore, service_name: str) -> ServicePlan:
        service = store.get_feature_service(service_name)
        return cls(
            service=service,
            names=[f.name for p in service.feature_view_projections for f in p.features],
            stored=stored_views(store, service),
            request_fields=request_fields(store, service),
        )


def read_online(
    store: FeatureStore, service: str | ServicePlan, user_ids: Sequence[int], *, now: float
) -> OnlineRead:
    """Online features of `user_ids` by FeatureService (a name, or a plan kept from an earlier call) as of
    `now` (unix seconds), stale values masked."""
    plan = ServicePlan.of(store, service) if isinstance(service, str) else service
    extra = {name: now for name in plan.request_fields}
    response = store.get_online_features(
        features=plan.service, entity_rows=[{JOIN_KEY: u, **extra} for u in user_ids]
    ).to_dict(include_event_timestamps=True)
    # One object array (Feast's values as they are: None for missing, lists for sequences), masked in numpy
    # and wrapped once: a frame built column by column costs more than the read for a few users.
    values = np.empty((len(user_ids), len(plan.names)), dtype=object)
    for column, name in enumerate(plan.names):
        for row, value in enumerate(response[name]):  # element-wise: numpy would broadcast list values
            values[row, column] = value
    event_time, ages, expired = {}, {}, {}
    for view in plan.stored:
        stamps = _event_times(response, view)
        age = now - stamps
        too_old = ~np.isnan(stamps) & (age > view.ttl_seconds)
        # Training never sees a row older than the TTL (Feast drops it offline), so serving must not either.
        values[np.ix_(too_old, [plan.names.index(c) for c in view.columns])] = None
        event_time[view.name], ages[view.name], expired[view.name] = stamps, age, too_old
    frame = pd.DataFrame(values, columns=plan.names, copy=False)
    return OnlineRead(frame, event_time, ages, expired)
