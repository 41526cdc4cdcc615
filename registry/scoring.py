"""score(user_id): the only scoring code. The CLI and the HTTP API are thin adapters over it.

alias -> model version (registry) -> online features by the version's FeatureService (Feast) -> forward.
Models are loaded once per version, verified against the sha256 recorded in the registry.

Hot reload: the scorer caches each model's alias -> version map and refreshes it with one indexed query at
most every `alias_poll_s` seconds (default 0.5 s), so an alias move is served within a second without a
restart. A batch resolves each alias once, so it is never answered by two versions of one alias.
"""

from __future__ import annotations

import gc
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from feast import FeatureService, FeatureStore, FeatureView
from feast.errors import FeastObjectNotFoundException
from feast.types import Bool, Float32, Float64, Int32, Int64

from registry.artifacts import fetch_artifact
from registry.db import validate
from registry.db.store import ModelRegistry, ModelVersion
from registry.features.bulk_online import BulkReader, decode_numbers, decode_objects
from registry.features.online import ServicePlan, read_online
from registry.features.store import FeatureRepoError, open_store
from registry.modeling import ShopModel
from registry.serving.config import ServingConfig
from registry.settings import Settings
from registry.tasks import CategoryProbability
from registry.training import resolve_device

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
USER_KEY = "user_id"  # the `user` entity's join key (feature_repo/users.py)
shadow_log = logging.getLogger("shopscore.shadow")
log = logging.getLogger(__name__)


NUMERIC_TYPES = (Int32, Int64, Float32, Float64, Bool)


class InvalidUserId(ValueError):
    """A user id that is not an integer (the `user` entity's join key is INT64)."""


@dataclass(frozen=True)
class Score:
    """One user's answer: `value`, of the kind the model's head declares (`answer` names it, e.g.
    `probability`, `expected_spend`, `top_categories`, or a plugin's own such as `churn_probability`)."""

    user_id: int
    model: str
    version: int
    # The alias that answered: the requested one, or the one a traffic split chose (registry.serving.config).
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
    features: dict[str, float | None]
    feature_age_seconds: float | None
    stale: bool
    cold_start: bool


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


def _feature_value(value: object) -> float | list | str | None:
    """A feature as JSON wants it: None when absent, lists as lists, numbers as floats."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (list, str)):
        return value
    return float(value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class _ViewSpec:
    """One feature view of a FeatureService, as the hot path reads it."""

    view: FeatureView | None  # None: not a plain FeatureView (e.g. on-demand), read through Feast's API
    names: list[str]
    columns: list[int]  # positions of `names` in the service's feature list
    ttl_seconds: float


@dataclass(frozen=True)
class _ServiceSpec:
    """What the hot path needs from a FeatureService, read from the Feast registry once per service (a
    re-applied view with a new TTL or schema is picked up by a new Scorer, e.g. a restart)."""

    service: FeatureService
    names: list[str]
    views: list[_ViewSpec]
    # Every view is a plain FeatureView keyed by the int64 user_id alone and the online store is one
    # registry.features.bulk_online reads: read in bulk, skipping Feast's per-value work (its module says
    # why). Otherwise (on-demand views, other stores) Feast's public API reads it, with this plan.
    direct: bool
    public: ServicePlan | None
    # Every field is a number. Otherwise (lists of a sequence, strings) values travel as an object array with
    # None where absent, and the model gets a pandas frame.
    scalar: bool


class Scorer:
    """Holds the registry, the Feast store and the loaded models; safe to share between threads."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        serving: ServingConfig | None = None,
        alias_poll_s: float = 0.5,
        bulk_reads: bool = True,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.clock = clock  # injectable so tests and replays can score "as of" another time
        self.serving = serving or ServingConfig()
        self.alias_poll_s = alias_poll_s
        self.registry = ModelRegistry.open(settings=self.settings)
        self.store: FeatureStore = open_store(self.settings)
        # bulk_reads=False reads every service through Feast's public API (the benchmark's baseline, and a
        # way out should a Feast upgrade change what the bulk reader relies on).
        self._bulk = BulkReader.for_store(self.store, USER_KEY) if bulk_reads else None
        self.device = resolve_device(self.settings.device)
        self._models: dict[tuple[str, int], ShopModel] = {}
        self._versions: dict[tuple[str, int], ModelVersion] = {}
        self._services: dict[str, _ServiceSpec] = {}
        # model -> (monotonic time of the last poll, {alias: version})
        self._aliases: dict[str, tuple[float, dict[str, int]]] = {}
        self._lock = threading.Lock()
        self._alias_lock = threading.Lock()
        # Shadow scoring runs off the request path, one batch at a time; when it falls behind, batches are
        # dropped (and counted) rather than queued without bound.
        self._shadow_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shopscore-shadow")
        self._shadow_pending: set[Future[None]] = set()
        self.shadow_dropped = 0
        self.max_shadow_pending = 64

    # ------------------------------------------------------------------------------ versions and models

    def _alias_map(self, model: str) -> dict[str, int]:
        """{alias: version} of `model`, at most `alias_poll_s` old: one indexed registry query per poll."""
        now = time.monotonic()
        cached = self._aliases.get(model)
        if cached is not None and now - cached[0] < self.alias_poll_s:
            return cached[1]
        validate.model_name(model)  # refuse junk before it reaches SQL (InvalidInput names the rule)
        with self._alias_lock:
            cached = self._aliases.get(model)
            if cached is not None and time.monotonic() - cached[0] < self.alias_poll_s:
                return cached[1]  # another thread polled while this one waited
            aliases = self.registry.alias_versions(model)
            self._aliases[model] = (time.monotonic(), aliases)
            return aliases

    def resolve(self, model: str, alias: str) -> ModelVersion:
        """The version `alias` points at, as of the last poll (at most `alias_poll_s` ago)."""
        number = self._alias_map(model).get(alias)
        if number is None:
            validate.alias_name(alias)
            # Unknown model or alias (or one created since the last poll): ask the registry, which either
            # finds it or raises UnknownModel / UnknownAlias with a message naming the fix.
            record = self.registry.resolve(model, alias)
            with self._alias_lock:
                self._aliases.pop(model, None)
            number = record.version
        key = (model, number)
        if key not in self._versions:
            self._versions[key] = self.registry.get_version(model, number)
        return self._versions[key]

    def invalidate(self, model: str) -> None:
        """Forget `model`'s alias map so the next request polls (after this process moved an alias)."""
        with self._alias_lock:
            self._aliases.pop(model, None)

    def _model(self, version: ModelVersion) -> ShopModel:
        key = (version.model, version.version)
        model = self._models.get(key)
        if model is not None:
            return model
        with self._lock:
            if key not in self._models:
                directory = fetch_artifact(version.artifact_uri, version.sha256)
                loaded = ShopModel.from_pretrained(directory, device=self.device)
                loaded.self_check()  # a version whose parts break their contract is refused, never served
                self._models[key] = loaded
                log.info("loaded %s v%d on %s", version.model, version.version, self.device)
            return self._models[key]

    def warm(self, model: str = "purchase", alias: str = "production") -> int:
        """Resolve `alias` and load its model now rather than on the first request; the version number."""
        version = self.resolve(model, alias)
        self._model(version)
        return version.version

    def loaded_versions(self) -> list[tuple[str, int]]:
        return sorted(self._models)

    # --------------------------------------------------------------------------------------- features

    def _service(self, name: str) -> _ServiceSpec:
        spec = self._services.get(name)
        if spec is None:
            try:
                service = self.store.get_feature_service(name)
            except FeastObjectNotFoundException as exc:
                raise FeatureRepoError(
                    f"the model needs FeatureService {name!r}, which the Feast registry lacks ({exc}); "
                    f"run `shopscore features apply` (and `features materialize`) with this feature repo"
                ) from None
            names: list[str] = []
            views = []
            for projection in service.feature_view_projections:
                columns = [f.name for f in projection.features]
                try:
                    view: FeatureView | None = self.store.get_feature_view(projection.name)
                except Exception:  # on-demand or other view kinds: no TTL of their own, public read path
                    view = None
                ttl = view.ttl if view is not None else None
                seconds = ttl.total_seconds() if ttl and ttl.total_seconds() > 0 else float("inf")
                positions = list(range(len(names), len(names) + len(columns)))
                views.append(_ViewSpec(view, columns, positions, seconds))
                names += columns
            direct = self._bulk is not None and all(
                v.view is not None
                and v.view.join_keys == [USER_KEY]
                and [c.dtype for c in v.view.entity_columns] == [Int64]
                and not p.join_key_map
                for v, p in zip(views, service.feature_view_projections, strict=True)
            )
            scalar = all(
                f.dtype in NUMERIC_TYPES for p in service.feature_view_projections for f in p.features
            )
            public = None if direct else ServicePlan.of(self.store, name)
            spec = self._services[name] = _ServiceSpec(service, names, views, direct, public, scalar)
        return spec

    def _read(self, spec: _ServiceSpec, user_ids: list[int]) -> tuple[np.ndarray, list[np.ndarray]]:
        """(values (B, F) with NaN (None for object arrays) where absent, per view the snapshot times (B,) in
        epoch s, 0 if none), read in bulk (registry.features.bulk_online says why)."""
        assert spec.direct and self._bulk is not None, "other services are read by read_online"
        values = np.full((len(user_ids), len(spec.names)), np.nan if spec.scalar else None)
        stamps_by_view = []
        for v in spec.views:
            got = self._bulk.read(v.view, v.names, user_ids)  # type: ignore[arg-type]
            columns = np.asarray(v.columns)[got.columns]
            if spec.scalar:
                values[got.rows, columns] = decode_numbers(got.blobs)
            else:  # one by one: numpy would try to broadcast list values
                for row, column, value in zip(got.rows, columns, decode_objects(got.blobs), strict=True):
                    values[row, column] = value
            stamps_by_view.append(got.event_time)
        return values, stamps_by_view

    def _online(
        self, service_name: str, user_ids: list[int]
    ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """(names, values (B, F) NaN where absent or stale, ages (B,) NaN when unknown, stale mask (B,))."""
        spec = self._service(service_name)
        now = self.clock()
        if not spec.direct:
            # On-demand views need Feast's request planning (and the request time), and other stores have no
            # bulk reader: the public read path, which masks stale values the same way.
            read = read_online(self.store, spec.public, user_ids, now=now)  # type: ignore[arg-type]
            if spec.scalar:
                values = read.frame.to_numpy(dtype="float64", na_value=np.nan)
            else:
                values = read.frame.to_numpy(dtype=object)
            return list(read.frame.columns), values, read.newest_age(), read.any_expired()
        values, stamps_by_view = self._read(spec, user_ids)
        newest = np.zeros(len(user_ids))
        stale = np.zeros(len(user_ids), dtype=bool)
        for v, stamps in zip(spec.views, stamps_by_view, strict=True):
            expired = (stamps > 0) & (now - stamps > v.ttl_seconds)
            # Training never sees a snapshot older than the TTL (Feast drops it), so serving must not either.
            if expired.any():
                values[np.ix_(expired, v.columns)] = np.nan if spec.scalar else None
            stale |= expired
            newest = np.maximum(newest, stamps)
        ages = np.where(newest > 0, now - newest, np.nan)
        return spec.names, values, ages, stale

    def features(
        self, user_id: object, *, model: str = "purchase", alias: str = "production"
    ) -> OnlineFeatures:
        """The online features the version behind `alias` reads for this user (by its FeatureService)."""
        uid = parse_user_id(user_id)
        version = self.resolve(model, alias)
        names, values, ages, stale = self._online(version.feature_service, [uid])
        return OnlineFeatures(
            user_id=uid,
            model=model,
            version=version.version,
            alias=alias,
            feature_service=version.feature_service,
            features={n: _feature_value(v) for n, v in zip(names, values[0], strict=True)},
            feature_age_seconds=None if np.isnan(ages[0]) else float(ages[0]),
            stale=bool(stale[0]),
            cold_start=bool(np.isnan(ages[0])),
        )

    # ---------------------------------------------------------------------------------------- scoring

    def _score_alias(self, model: str, alias: str, ids: list[int]) -> list[Score]:
        """One resolve, one online lookup and one forward pass for users all answered by `alias`."""
        version = self.resolve(model, alias)
        shop_model = self._model(version)
        names, values, ages, stale = self._online(shop_model.feature_service, ids)
        head = shop_model.head
        answers = shop_model.answers(shop_model.predict_values(names, values))
        return [
            Score(
                user_id=uid,
                model=model,
                version=version.version,
                alias=alias,
                feature_service=shop_model.feature_service,
                feature_age_seconds=None if age != age else float(age),  # NaN != NaN: unknown user
                stale=bool(is_stale),
                cold_start=age != age,
                head=head.name,
                answer=head.answer.name,
                value=answer,
            )
            for uid, answer, age, is_stale in zip(ids, answers, ages.tolist(), stale.tolist(), strict=True)
        ]

    def score_many(
        self, user_ids: Sequence[object], *, model: str = "purchase", alias: str = "production"
    ) -> list[Score]:
        """Score a batch with one online lookup and one forward pass per answering alias (one, unless the
        model's route splits traffic), in the order given."""
        ids = [parse_user_id(u) for u in user_ids]
        if not ids:
            return []
        route = self.serving.route(model)
        if alias != route.entry_alias or not route.split:
            scores = self._score_alias(model, alias, ids)
        else:
            groups: dict[str, list[int]] = {}
            for position, uid in enumerate(ids):
                groups.setdefault(route.alias_for(model, uid), []).append(position)
            scores = [None] * len(ids)  # type: ignore[list-item]
            for answering, positions in groups.items():
                answered = self._score_alias(model, answering, [ids[i] for i in positions])
                for position, s in zip(positions, answered, strict=True):
                    scores[position] = s
        if alias == route.entry_alias and route.shadow:
            self._submit_shadow(model, route.shadow, scores)
        return scores

    def score(self, user_id: object, *, model: str = "purchase", alias: str = "production") -> Score:
        return self.score_many([user_id], model=model, alias=alias)[0]

    # ----------------------------------------------------------------------------------------- shadow

    def _submit_shadow(self, model: str, shadow: str, served: list[Score]) -> None:
        with self._lock:
            if len(self._shadow_pending) >= self.max_shadow_pending:
                self.shadow_dropped += 1
                return
            future = self._shadow_pool.submit(self._shadow, model, shadow, served)
            self._shadow_pending.add(future)
        future.add_done_callback(self._shadow_done)

    def _shadow_done(self, future: Future[None]) -> None:
        with self._lock:
            self._shadow_pending.discard(future)

    def _shadow(self, model: str, shadow: str, served: list[Score]) -> None:
        """Score the shadow alias on the users just served and log both answers, one JSON line per user."""
        try:
            shadowed = self._score_alias(model, shadow, [s.user_id for s in served])
        except Exception as exc:  # a broken shadow must never affect serving; say so in the log
            shadow_log.warning("shadow alias %r of model %r failed: %s", shadow, model, exc)
            return
        for main, other in zip(served, shadowed, strict=True):
            shadow_log.info(
                json.dumps(
                    {
                        "event": "shadow_score",
                        "model": model,
                        "user_id": main.user_id,
                        "served_alias": main.alias,
                        "served_version": main.version,
                        "served_answer": main.answer,
                        "served_value": main.to_dict()["value"],
                        "shadow_alias": other.alias,
                        "shadow_version": other.version,
                        "shadow_answer": other.answer,
                        "shadow_value": other.to_dict()["value"],
                    },
                    sort_keys=True,
                )
            )

    def flush_shadow(self, timeout: float = 10.0) -> None:
        """Wait until the shadow batches submitted so far are scored and logged (tests, shutdown)."""
        with self._lock:
            pending = list(self._shadow_pending)
        for future in pending:
            future.result(timeout=timeout)

    def close(self) -> None:
        self._shadow_pool.shutdown(wait=True, cancel_futures=True)
        self.registry.close()


def set_inference_threads(threads: int | None = None) -> None:
    """Intra-op threads for CPU inference. The serving models are small, so a thread pool mostly adds
    hand-off latency; one thread per process (scale by replicas) is the default for serving."""
    torch.set_num_threads(threads or 1)


def freeze_heap() -> None:
    """Exempt every object alive now (Feast's registry, torch modules: ~500k objects) from garbage
    collection; call once after warm-up, in a serving process.

    A batch read allocates tens of thousands of short-lived row tuples, and the collections they trigger walk
    the whole heap: on the bench shop, score_many(1000) served ~4,100 users/s without this and ~11,800 with
    it (back-to-back runs, load average 3 on 2 cores). Objects created later are collected as usual."""
    gc.collect()
    gc.freeze()


_default: Scorer | None = None
_default_lock = threading.Lock()


def default_scorer() -> Scorer:
    global _default
    with _default_lock:
        if _default is None:
            _default = Scorer(serving=ServingConfig.from_env())
        return _default


def score(user_id: object, *, model: str = "purchase", alias: str = "production") -> Score:
    """Score one user with the model version that `alias` points to (settings from the environment)."""
    return default_scorer().score(user_id, model=model, alias=alias)


def score_many(
    user_ids: Sequence[object], *, model: str = "purchase", alias: str = "production"
) -> list[Score]:
    return default_scorer().score_many(user_ids, model=model, alias=alias)
