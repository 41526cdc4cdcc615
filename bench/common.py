"""A trained shop workspace for the benchmarks: built once per profile under bench/.work/ and reused.

Profiles: "" (embedded: SQLite online store, file Feast registry) and "redis" (Redis online store, Feast SQL
registry on PostgreSQL). The redis profile uses Redis database 5 and PostgreSQL database shopscore_bench_feast
so a benchmark never overwrites what tests or a demo keep in the defaults.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from registry import jobs
from registry.db.store import ModelRegistry
from registry.events.schema import read_events
from registry.settings import Settings
from registry.training import TrainConfig

WORK = Path(__file__).resolve().parent / ".work"
POSTGRES = os.environ.get("SHOPSCORE_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")
FEAST_DB = "shopscore_bench_feast"


def profile_env(profile: str) -> dict[str, str]:
    """Environment variables the profile's feature_store yaml needs (also passed to server subprocesses)."""
    if profile != "redis":
        return {}
    return {
        "SHOPSCORE_REDIS": os.environ.get("SHOPSCORE_REDIS", "127.0.0.1:6379,db=5"),
        "SHOPSCORE_FEAST_REGISTRY_URL": f"{POSTGRES}/{FEAST_DB}",
    }


def _create_feast_database() -> None:
    engine = sa.create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": FEAST_DB}).first():
            conn.execute(sa.text(f'CREATE DATABASE "{FEAST_DB}"'))
    engine.dispose()


def shop(profile: str = "", *, users: int = 3000, days: int = 60) -> tuple[Settings, list[int]]:
    """(settings, user ids with online features) of a workspace whose `production` alias is trained."""
    os.environ.update(profile_env(profile))
    home = WORK / (profile or "embedded")
    settings = Settings.from_env(home=home).with_(
        database_url=f"sqlite:///{home / 'registry.db'}",
        feast_profile=profile,
        artifacts_root=str(home / "artifacts"),
    )
    if not (home / "ready").exists():
        home.mkdir(parents=True, exist_ok=True)
        if profile == "redis":
            _create_feast_database()
        jobs.generate(settings, users=users, days=days, seed=3)
        jobs.build_features(settings)
        jobs.apply_features(settings)
        jobs.materialize_features(settings)
        registry = ModelRegistry.open(settings=settings, upgrade=True, role="promoter")
        version = jobs.train(
            settings, jobs.TrainSpec(train=TrainConfig(epochs=5, progress=False, device="cpu"))
        )
        registry.set_alias("purchase", "production", version.version, reason="bench", actor="bench")
        registry.close()
        (home / "ready").touch()
    events = read_events(settings.events_dir)
    recent = events[events["event_time"] > events["event_time"].max() - pd.Timedelta(days=1)]
    return settings, sorted(int(u) for u in recent["user_id"].unique())


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment a subprocess needs to see the same workspace."""
    return {
        **profile_env(settings.feast_profile),
        "SHOPSCORE_HOME": str(settings.home),
        "SHOPSCORE_DATABASE_URL": settings.database_url,
        "SHOPSCORE_ARTIFACTS_DIR": settings.artifacts_root,
        "SHOPSCORE_FEAST_PROFILE": settings.feast_profile,
        "SHOPSCORE_DEVICE": settings.device,
    }
