"""One tiny trained shop shared by every tests/test_serving_*.py module (built once per session, ~20 s).

production -> v1, candidate -> v2, challenger -> v1. Tests that move an alias put it back before they end.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from registry import flow as jobs
from registry.events.schema import read_events
from registry.model_registry.promotion import PromotionPolicy
from registry.model_registry.records import ModelVersion
from registry.model_registry.store import ModelRegistry
from registry.modeling.training import TrainConfig
from registry.settings import Settings

PROMOTER_TOKEN = "serving-test-token"
USERS, DAYS = 600, 42  # the smallest shop the default splits accept (14 + 3 x 7-day horizon days)


@dataclass
class ServingShop:
    settings: Settings
    registry: ModelRegistry  # role="promoter": tests move protected aliases freely
    v1: ModelVersion
    v2: ModelVersion
    known_user: int  # has fresh online features


@pytest.fixture(scope="session")
def serving_shop(tmp_path_factory: pytest.TempPathFactory) -> ServingShop:
    mp = pytest.MonkeyPatch()
    # Every registry opened in this session (the scorer's too) sees the same token and protected alias.
    mp.setenv("SHOPSCORE_PROMOTER_TOKEN", PROMOTER_TOKEN)
    mp.setenv("SHOPSCORE_PROTECTED_ALIASES", "production")
    settings = Settings.from_env(home=tmp_path_factory.mktemp("serving"))
    settings = settings.with_(
        database_url=f"sqlite:///{settings.home / 'registry.db'}", feast_profile="", device="cpu"
    )
    jobs.generate(settings, users=USERS, days=DAYS, seed=5)
    jobs.build_features(settings)
    jobs.apply_features(settings)
    jobs.materialize_features(settings)
    registry = ModelRegistry.open(
        settings=settings, upgrade=True, role="promoter", policy=PromotionPolicy.from_env()
    )
    v1 = jobs.train(settings, jobs.TrainSpec(train=TrainConfig(epochs=3, progress=False, seed=0)))
    v2 = jobs.train(settings, jobs.TrainSpec(train=TrainConfig(epochs=3, progress=False, seed=1)))
    registry.set_alias("purchase", "production", v1.version, reason="first", actor="test")
    registry.set_alias("purchase", "candidate", v2.version, reason="try", actor="test")
    registry.set_alias("purchase", "challenger", v1.version, reason="shadow", actor="test")
    known = int(read_events(settings.events_dir).iloc[-1]["user_id"])
    yield ServingShop(settings, registry, v1, v2, known)
    registry.close()
    mp.undo()
