"""Online reads by FeatureService: one reader, which plans a service once and reads it in bulk or through
Feast's public API.

Feast returns an online value however old it is (a view's TTL only applies offline), so the reader checks
the age itself: values older than their view's TTL are masked, exactly as training never sees them, and each
read reports how old each user's features are so a caller can flag stale data.

Two paths, one result:
- bulk (`registry.features.bulk_online`, the serving hot path): every view of the service is a plain
  FeatureView keyed by the int64 user id alone, on an online store the bulk reader supports (SQLite, Redis);
- public (`FeatureStore.get_online_features`): everything else, e.g. services with on-demand views, which
  need Feast's request planning and the request time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from feast import FeatureService, FeatureStore, FeatureView, OnDemandFeatureView
from feast.errors import FeastObjectNotFoundException
from feast.types import Bool, Float32, Float64, Int32, Int64

from registry.features.bulk_online import BulkReader, decode_numbers, decode_objects
from registry.features.contract import JOIN_KEY
from registry.features.feast_store import FeatureRepoError

NUMERIC_TYPES = (Int32, Int64, Float32, Float64, Bool)


@dataclass(frozen=True)
class ViewPlan:
    """One view of a service as a read needs it."""

    name: str
    view: FeatureView | None  # None: an on-demand view, computed per request (never stale)
    columns: list[str]  # the features the service takes from it
    positions: list[int]  # where they sit in the service's feature list
    ttl_seconds: float  # inf: no TTL


@dataclass(frozen=True)
class ServicePlan:
    """What reading a FeatureService online needs from the Feast registry, looked up once.

    Feast parses its registry protos on every `get_feature_service` / `get_feature_view` call (~30 ms for
    `purchase_rt_v1` on the file registry, more than the read itself), so a reader keeps one plan per service;
    a re-applied service is picked up by a new reader (e.g. a restart)."""

    service: FeatureService
    names: list[str]  # every feature, in the service's order
    views: list[ViewPlan]
    request_fields: list[str]  # request-source fields of its on-demand views (shopscore's carry the time)
    bulk: bool  # readable by the bulk path
    scalar: bool  # every feature is a number (otherwise lists or strings travel as objects)

    @property
    def stored(self) -> list[ViewPlan]:
        return [v for v in self.views if v.view is not None]


@dataclass(frozen=True)
class OnlineRead:
    """Features of a batch of users by one service, as of `now`; values older than their view's TTL masked."""

    names: list[str]
    # (B, F): float64 with NaN where absent when the service is all numbers, else objects with None.
    values: np.ndarray
    event_time: dict[str, np.ndarray]  # stored view -> (B,) unix seconds of the row read, NaN: none stored
    expired: dict[str, np.ndarray]  # stored view -> (B,) stored but older than the view's TTL (so masked)
    ages: np.ndarray  # (B,) seconds since the freshest view's row; NaN: nothing stored (cold start)
    stale: np.ndarray  # (B,) some view's row was older than its TTL

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.values, columns=self.names, copy=False)


class OnlineReader:
    """Reads FeatureServices for batches of int64 user ids; safe to share between threads."""

    def __init__(self, store: FeatureStore, *, bulk: bool = True) -> None:
        self.store = store
        # bulk=False reads every service through Feast's public API (the benchmark's baseline, and a way out
        # should a Feast upgrade change what the bulk reader relies on).
        self.bulk = BulkReader.for_store(store, JOIN_KEY) if bulk else None
        self._plans: dict[str, ServicePlan] = {}

    def plan(self, service_name: str) -> ServicePlan:
        plan = self._plans.get(service_name)
        if plan is None:
            plan = self._plans[service_name] = self._plan(service_name)
        return plan

    def _plan(self, service_name: str) -> ServicePlan:
        try:
            service = self.store.get_feature_service(service_name)
        except FeastObjectNotFoundException as exc:
            raise FeatureRepoError(
                f"the model needs FeatureService {service_name!r}, which the Feast registry lacks ({exc}); "
                f"run `shopscore features apply` (and `features materialize`) with this feature repo"
            ) from None
        on_demand = {v.name: v for v in self.store.list_on_demand_feature_views()}
        names: list[str] = []
        views: list[ViewPlan] = []
        for projection in service.feature_view_projections:
            columns = [f.name for f in projection.features]
            view = None if projection.name in on_demand else self.store.get_feature_view(projection.name)
            ttl = view.ttl if view is not None else None
            seconds = ttl.total_seconds() if ttl and ttl.total_seconds() > 0 else float("inf")
            positions = list(range(len(names), len(names) + len(columns)))
            views.append(ViewPlan(projection.name, view, columns, positions, seconds))
            names += columns
        bulk = self.bulk is not None and all(
            v.view is not None
            and v.view.join_keys == [JOIN_KEY]
            and [c.dtype for c in v.view.entity_columns] == [Int64]
            and not p.join_key_map
            for v, p in zip(views, service.feature_view_projections, strict=True)
        )
        scalar = all(f.dtype in NUMERIC_TYPES for p in service.feature_view_projections for f in p.features)
        return ServicePlan(service, names, views, _request_fields(service, on_demand), bulk, scalar)

    def read(self, service_name: str, user_ids: Sequence[int], *, now: float) -> OnlineRead:
        """Features of `user_ids` by the service, as of `now` (unix seconds)."""
        plan = self.plan(service_name)
        values = np.full((len(user_ids), len(plan.names)), np.nan if plan.scalar else None)
        stamps = (
            self._read_bulk(plan, user_ids, values)
            if plan.bulk
            else self._read_public(plan, user_ids, values, now)
        )
        return _mask_expired(plan, values, stamps, now)

    def _read_bulk(
        self, plan: ServicePlan, user_ids: Sequence[int], values: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Fill `values` from the online store directly (registry.features.bulk_online says why)."""
        assert self.bulk is not None
        stamps = {}
        for v in plan.views:
            got = self.bulk.read(v.view, v.columns, user_ids)  # type: ignore[arg-type]
            columns = np.asarray(v.positions)[got.columns]
            if plan.scalar:
                values[got.rows, columns] = decode_numbers(got.blobs)
            else:  # one by one: numpy would try to broadcast list values
                for row, column, value in zip(got.rows, columns, decode_objects(got.blobs), strict=True):
                    values[row, column] = value
            stamps[v.name] = np.where(got.event_time > 0, got.event_time, np.nan)
        return stamps

    def _read_public(
        self, plan: ServicePlan, user_ids: Sequence[int], values: np.ndarray, now: float
    ) -> dict[str, np.ndarray]:
        """Fill `values` through Feast's `get_online_features`."""
        extra = {name: now for name in plan.request_fields}
        response = self.store.get_online_features(
            features=plan.service, entity_rows=[{JOIN_KEY: u, **extra} for u in user_ids]
        ).to_dict(include_event_timestamps=True)
        for column, name in enumerate(plan.names):
            for row, value in enumerate(response[name]):  # element-wise: numpy would broadcast list values
                if value is not None:
                    values[row, column] = value
        stamps = {}
        for v in plan.stored:
            raw = response[f"{v.columns[0]}__ts"]
            seconds = np.array([np.nan if s is None else float(s) for s in raw], dtype="float64")
            stamps[v.name] = np.where(seconds > 0, seconds, np.nan)  # Feast reports 0 where it has no row
        return stamps


def _mask_expired(
    plan: ServicePlan, values: np.ndarray, stamps: dict[str, np.ndarray], now: float
) -> OnlineRead:
    rows = len(values)
    expired = {}
    newest = np.full(rows, np.nan)
    stale = np.zeros(rows, dtype=bool)
    for v in plan.stored:
        too_old = now - stamps[v.name] > v.ttl_seconds  # NaN compares False: nothing stored is not stale
        # Training never sees a row older than the TTL (Feast drops it offline), so serving must not either.
        if too_old.any():
            # numpy's stubs want every ix_ argument of one dtype; a mask with a list of indices is valid.
            values[np.ix_(too_old, v.positions)] = np.nan if plan.scalar else None  # type: ignore[arg-type]
        expired[v.name] = too_old
        stale |= too_old
        newest = np.fmax(newest, stamps[v.name])  # fmax skips NaN
    return OnlineRead(plan.names, values, stamps, expired, now - newest, stale)


def request_fields(store: FeatureStore, service: FeatureService) -> list[str]:
    """Request-source fields the service's on-demand views need (shopscore's carry the request time)."""
    return _request_fields(service, {v.name: v for v in store.list_on_demand_feature_views()})


def _request_fields(service: FeatureService, on_demand: dict[str, OnDemandFeatureView]) -> list[str]:
    names: list[str] = []
    for projection in service.feature_view_projections:
        view = on_demand.get(projection.name)
        for source in view.source_request_sources.values() if view else []:
            names += [f.name for f in source.schema if f.name not in names]
    return names


def read_online(store: FeatureStore, service_name: str, user_ids: Sequence[int], *, now: float) -> OnlineRead:
    """One read through Feast's public API, planned for this call (tests and one-off tools; a server keeps an
    OnlineReader)."""
    return OnlineReader(store, bulk=False).read(service_name, user_ids, now=now)
