"""`Scorer`: score(user_id) and score_many(user_ids), the only scoring code. The CLI and the HTTP API are
thin adapters over it.

alias -> model version (AliasCache) -> online features by the version's FeatureService (OnlineReader) ->
forward pass of the loaded model (ModelCache). A traffic split picks the answering alias per user and a
shadow alias is scored off the request path (registry.scoring.routing, registry.scoring.shadow). A batch
resolves each alias once, so it is never answered by two versions of one alias.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import cast

import numpy as np
from feast import FeatureStore

from registry.features.feast_store import open_store
from registry.features.online import OnlineReader
from registry.model_registry.store import ModelRegistry, ModelVersion
from registry.modeling.training import resolve_device
from registry.scoring.alias_cache import AliasCache
from registry.scoring.model_cache import ModelCache
from registry.scoring.results import OnlineFeatures, Score, feature_value, parse_user_id
from registry.scoring.routing import ServingConfig
from registry.scoring.shadow import Shadow
from registry.settings import Settings


class Scorer:
    """Holds the model registry, the online reader and the loaded models; safe to share between threads."""

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
        self.model_registry = ModelRegistry.open(settings=self.settings)
        self.aliases = AliasCache(self.model_registry, poll_s=alias_poll_s)
        self.reader = OnlineReader(open_store(self.settings), bulk=bulk_reads)
        self.models = ModelCache(resolve_device(self.settings.device))
        self.shadow = Shadow(self._score_alias)

    @property
    def feature_store(self) -> FeatureStore:
        return self.reader.store

    def resolve(self, model: str, alias: str) -> ModelVersion:
        """The version `alias` points at, as of the last poll (at most `alias_poll_s` ago)."""
        return self.aliases.resolve(model, alias)

    def invalidate(self, model: str) -> None:
        """Forget `model`'s alias map so the next request polls (after this process moved an alias)."""
        self.aliases.invalidate(model)

    def warm(self, model: str = "purchase", alias: str = "production") -> int:
        """Resolve `alias` and load its model now rather than on the first request; the version number."""
        version = self.resolve(model, alias)
        self.models.get(version)
        return version.version

    def loaded_versions(self) -> list[tuple[str, int]]:
        return self.models.loaded()

    def features(
        self, user_id: object, *, model: str = "purchase", alias: str = "production"
    ) -> OnlineFeatures:
        """The online features the version behind `alias` reads for this user (by its FeatureService)."""
        uid = parse_user_id(user_id)
        version = self.resolve(model, alias)
        read = self.reader.read(version.feature_service, [uid], now=self.clock())
        age = read.ages[0]
        return OnlineFeatures(
            user_id=uid,
            model=model,
            version=version.version,
            alias=alias,
            feature_service=version.feature_service,
            features={n: feature_value(v) for n, v in zip(read.names, read.values[0], strict=True)},
            feature_age_seconds=None if np.isnan(age) else float(age),
            stale=bool(read.stale[0]),
            cold_start=bool(np.isnan(age)),
        )

    def _score_alias(self, model: str, alias: str, ids: list[int]) -> list[Score]:
        """One resolve, one online read and one forward pass for users all answered by `alias`."""
        version = self.resolve(model, alias)
        shop_model = self.models.get(version)
        read = self.reader.read(shop_model.feature_service, ids, now=self.clock())
        head = shop_model.head
        answers = shop_model.answers(shop_model.predict_values(read.names, read.values))
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
            for uid, answer, age, is_stale in zip(
                ids, answers, read.ages.tolist(), read.stale.tolist(), strict=True
            )
        ]

    def score_many(
        self, user_ids: Sequence[object], *, model: str = "purchase", alias: str = "production"
    ) -> list[Score]:
        """Score a batch with one online read and one forward pass per answering alias (one, unless the
        model's route splits traffic), in the order given."""
        ids = [parse_user_id(u) for u in user_ids]
        if not ids:
            return []
        route = self.serving.route(model)
        groups = route.answering(model, alias, ids)
        if len(groups) == 1:
            (answering,) = groups
            scores = self._score_alias(model, answering, ids)
        else:
            placed: list[Score | None] = [None] * len(ids)
            for answering, positions in groups.items():
                answered = self._score_alias(model, answering, [ids[i] for i in positions])
                for position, s in zip(positions, answered, strict=True):
                    placed[position] = s
            scores = cast("list[Score]", placed)  # every position is filled
        shadow = route.shadow_of(alias)
        if shadow:
            self.shadow.submit(model, shadow, scores)
        return scores

    def score(self, user_id: object, *, model: str = "purchase", alias: str = "production") -> Score:
        return self.score_many([user_id], model=model, alias=alias)[0]

    def flush_shadow(self, timeout: float = 10.0) -> None:
        """Wait until the shadow batches submitted so far are scored and logged (tests, shutdown)."""
        self.shadow.flush(timeout)

    def close(self) -> None:
        self.shadow.close()
        self.model_registry.close()
