"""The scale-out profile (Redis online store + Feast SQL registry on PostgreSQL) reads back exactly what the
embedded SQLite default does. Real servers: skipped, with the reason, only when they are unreachable."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from helpers import random_events
from test_feature_store import SERVICES, _comparable, build_and_apply

from registry.features import feast_store
from registry.settings import Settings

POSTGRES = os.environ.get("SHOPSCORE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("SHOPSCORE_TEST_REDIS_URL", "127.0.0.1:6379")

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def fresh_postgres_db() -> Iterator[str]:
    """A new, empty database for this test's Feast registry, dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    name = f"feast_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL unreachable at {POSTGRES}: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    yield f"{base}/{name}"
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url() -> str:
    redis = pytest.importorskip("redis")
    host, port = REDIS.split(":")
    try:
        redis.Redis(host=host, port=int(port), socket_connect_timeout=2).ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.skip(f"Redis unreachable at {REDIS}: {exc}")
    return REDIS


def test_redis_profile_reads_back_what_sqlite_does(tmp_path, monkeypatch, fresh_postgres_db, redis_url):
    # A unique project keeps this test's Redis keys apart from any other run; teardown removes them.
    monkeypatch.setenv("SHOPSCORE_FEAST_PROJECT", f"t_{uuid.uuid4().hex[:10]}")
    monkeypatch.setenv("SHOPSCORE_REDIS", redis_url)
    monkeypatch.setenv("SHOPSCORE_FEAST_REGISTRY_URL", fresh_postgres_db)
    for var in ("SHOPSCORE_FEAST_PROFILE", "SHOPSCORE_FEATURE_REPO"):
        monkeypatch.delenv(var, raising=False)
    events = random_events(n=1200, users=20, days=45)
    sqlite = Settings.from_env(home=tmp_path / "sqlite")
    redis = Settings.from_env(home=tmp_path / "redis").with_(feast_profile="redis")
    start = events["event_time"].min().floor("D").to_pydatetime()
    for settings in (sqlite, redis):
        build_and_apply(settings, events)
        feast_store.materialize(settings, start=start)
    redis_store = feast_store.open_store(redis)
    assert redis_store.config.online_store.type == "redis"
    assert type(redis_store.registry).__name__ == "SqlRegistry"
    try:
        users = [{"user_id": u, "request_ts": 1.7e9} for u in (1, 2, 3, 7, 11, 999999)]
        for service in SERVICES:
            got = {}
            for name, settings in (("sqlite", sqlite), ("redis", redis)):
                store = feast_store.open_store(settings)
                frame = store.get_online_features(
                    features=store.get_feature_service(service), entity_rows=users
                ).to_df()
                got[name] = {c: [_comparable(v) for v in frame[c]] for c in frame.columns}
            assert got["sqlite"] == got["redis"], f"{service} reads differently from Redis"
            if service == "purchase_seq_v1":
                assert sum(bool(s) for s in got["redis"]["seq_event_type"]) >= 4, "lists came back from Redis"
    finally:
        redis_store.teardown()


def test_redis_profile_without_its_variables_is_a_clear_error(settings: Settings, monkeypatch):
    monkeypatch.delenv("SHOPSCORE_REDIS", raising=False)
    with pytest.raises(feast_store.FeatureRepoError, match=r"SHOPSCORE_\w+.*export it"):
        feast_store.repo_config(settings.with_(feast_profile="redis"))
