"""Scorer behaviour a caller notices: fields, cold start, staleness, bad ids, batching, once-per-version
loading, hot reload under concurrent load, traffic split and shadow scoring."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch

from registry.features.feast_store import FeatureRepoError
from registry.features.online import read_online
from registry.modeling.shop_model import ShopModel
from registry.scoring import InvalidUserId, Scorer
from registry.scoring.routing import ModelRoute, ServingConfig, ServingConfigError, bucket

if TYPE_CHECKING:
    from serving_fixtures import ServingShop

pytest_plugins = ["serving_fixtures"]  # the session-wide tiny shop

UNKNOWN_USER = 10**12


@pytest.fixture(scope="module")
def scorer(serving_shop: ServingShop) -> Scorer:
    scorer = Scorer(serving_shop.settings)
    yield scorer
    scorer.close()


def test_known_user_gets_the_production_version_with_fresh_features(scorer, serving_shop):
    s = scorer.score(serving_shop.known_user)
    assert (s.model, s.alias, s.version) == ("purchase", "production", serving_shop.v1.version)
    assert s.feature_service == "purchase_v1" and 0.0 < s.probability < 1.0
    assert not s.cold_start and not s.stale and s.feature_age_seconds is not None


def test_unknown_user_is_a_cold_start_scored_on_empty_features(scorer):
    s = scorer.score(UNKNOWN_USER)
    assert s.cold_start and not s.stale and s.feature_age_seconds is None
    assert 0.0 < s.probability < 1.0


def test_service_with_an_on_demand_view_is_read_with_the_request_time(scorer, serving_shop):
    # purchase_rt_v1's on-demand view needs request_ts: the scorer must supply it, not fail in Feast.
    read = scorer.reader.read("purchase_rt_v1", [serving_shop.known_user, UNKNOWN_USER], now=time.time())
    names, values, ages, stale = read.names, read.values, read.ages, read.stale
    at_request = values[:, names.index("hours_since_last_event_at_request")]
    known_age, unknown_age = ages
    assert not np.isnan(known_age) and np.isnan(unknown_age) and not stale.any()
    assert at_request[0] > 0 and at_request[1] is None


def test_features_older_than_the_ttl_are_stale_and_ignored(serving_shop):
    # Score "as of" 30 days later: the 2-day TTL has passed, so the model sees what it sees for a new user.
    later = Scorer(serving_shop.settings, clock=lambda: time.time() + 30 * 86400)
    try:
        s = later.score(serving_shop.known_user)
        assert s.stale and not s.cold_start and s.feature_age_seconds > 2 * 86400
        assert s.probability == pytest.approx(later.score(UNKNOWN_USER).probability)
        assert all(v is None for v in later.features(serving_shop.known_user).features.values())
    finally:
        later.close()


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ("abc", "is not an integer"),
        (True, "is a boolean"),
        (2**63, "does not fit in int64"),
        ("٣", "not an integer"),
    ],
)
def test_malformed_user_id_is_a_clear_error(scorer, bad, match):
    with pytest.raises(InvalidUserId, match=match):
        scorer.score(bad)


def test_score_many_is_one_lookup_and_one_forward_and_matches_score(scorer, serving_shop, monkeypatch):
    users = [serving_shop.known_user, UNKNOWN_USER, *range(1, 40)]
    singles = [scorer.score(u) for u in users]
    lookups, forwards = [], []
    # One online-store read per feature view of the service (purchase_v1 has one view).
    real_read = scorer.reader.bulk.read
    monkeypatch.setattr(scorer.reader.bulk, "read", lambda *a: lookups.append(1) or real_read(*a))
    model = scorer.models.get(scorer.resolve("purchase", "production"))
    handle = model.register_forward_hook(lambda *args: forwards.append(1))
    try:
        batch = scorer.score_many(users)
    finally:
        handle.remove()
    assert (len(lookups), len(forwards)) == (1, 1)
    assert [s.user_id for s in batch] == users
    for one, many in zip(singles, batch, strict=True):
        assert many.probability == pytest.approx(one.probability, abs=1e-6)
        assert (many.version, many.cold_start, many.stale) == (one.version, one.cold_start, one.stale)


def test_each_version_is_loaded_once_in_inference_mode(serving_shop, monkeypatch):
    loads: list[str] = []
    real = ShopModel.from_pretrained.__func__
    monkeypatch.setattr(
        ShopModel,
        "from_pretrained",
        classmethod(lambda cls, d, **kw: loads.append(str(d)) or real(cls, d, **kw)),
    )
    scorer = Scorer(serving_shop.settings)
    try:
        for _ in range(5):
            scorer.score(serving_shop.known_user)
            scorer.score(serving_shop.known_user, alias="candidate")
            scorer.score_many([1, 2, 3], alias="challenger")  # same version as production: no new load
        assert len(loads) == 2
        assert scorer.loaded_versions() == [
            ("purchase", serving_shop.v1.version),
            ("purchase", serving_shop.v2.version),
        ]
        assert not any(
            scorer.models.get(scorer.resolve("purchase", a)).training for a in ("production", "candidate")
        )
        assert scorer.models.device == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    finally:
        scorer.close()


def test_alias_move_is_served_within_a_second_with_no_failed_or_foreign_answers(serving_shop):
    shop = serving_shop
    scorer = Scorer(shop.settings)
    scorer.warm("purchase", "production")
    scorer.models.get(
        scorer.model_registry.get_version("purchase", shop.v2.version)
    )  # load time is not reload time
    answers: list[tuple[float, int]] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def client(users: list[int]) -> None:
        while not stop.is_set():
            try:
                for s in scorer.score_many(users):
                    answers.append((time.monotonic(), s.version))
            except BaseException as exc:  # noqa: BLE001 - every failure is a test failure, keep them all
                failures.append(exc)

    threads = [
        threading.Thread(target=client, args=(u,)) for u in ([shop.known_user], [1, 2, 3, UNKNOWN_USER])
    ]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        shop.registry.set_alias(
            "purchase", "production", shop.v2.version, reason="hot", actor="test", force=True
        )
        moved_at = time.monotonic()
        time.sleep(1.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
        shop.registry.set_alias(
            "purchase", "production", shop.v1.version, reason="back", actor="test", force=True
        )
        scorer.close()
    assert not failures
    assert {v for _, v in answers} == {shop.v1.version, shop.v2.version}  # only ever-holders answered
    first_new = min(t for t, v in answers if v == shop.v2.version)
    assert first_new - moved_at < 1.0
    assert all(v == shop.v2.version for t, v in answers if t > moved_at + 1.0)


def test_split_is_stable_per_user_and_says_which_alias_answered(serving_shop, caplog):
    shop = serving_shop
    route = ModelRoute(split=(("production", 0.7), ("candidate", 0.3)), shadow="challenger")
    scorer = Scorer(shop.settings, serving=ServingConfig({"purchase": route}))
    users = list(range(1, 401))
    try:
        with caplog.at_level(logging.INFO, logger="shopscore.shadow"):
            first = scorer.score_many(users)
            again = [scorer.score(u) for u in users[:50]]
            scorer.flush_shadow()
        explicit = scorer.score(users[0], alias="candidate")  # an explicit non-entry alias is not split
    finally:
        scorer.close()
    by_alias = {s.alias for s in first}
    assert by_alias == {"production", "candidate"}
    share = sum(s.alias == "candidate" for s in first) / len(first)
    assert 0.2 < share < 0.4
    assert [s.alias for s in again] == [s.alias for s in first[:50]]
    for s in first:
        expected = shop.v1.version if s.alias == "production" else shop.v2.version
        assert s.version == expected
        assert s.alias == ("production" if bucket("purchase", s.user_id) < 0.7 else "candidate")
    assert explicit.alias == "candidate"
    shadow_lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "shopscore.shadow"]
    assert len(shadow_lines) == len(users) + 50  # one line per user served through the entry alias
    assert {line["shadow_alias"] for line in shadow_lines} == {"challenger"}
    assert {line["shadow_version"] for line in shadow_lines} == {shop.v1.version}


def test_a_broken_shadow_never_breaks_serving(serving_shop, caplog):
    scorer = Scorer(serving_shop.settings, serving=ServingConfig({"purchase": ModelRoute(shadow="nope")}))
    try:
        with caplog.at_level(logging.WARNING, logger="shopscore.shadow"):
            assert scorer.score(serving_shop.known_user).alias == "production"
            scorer.flush_shadow()
    finally:
        scorer.close()
    assert "shadow alias 'nope' of model 'purchase' failed" in caplog.text


def test_serving_config_refuses_bad_shares_and_names_the_fix(tmp_path):
    with pytest.raises(ServingConfigError, match="sum to 1"):
        ServingConfig.from_dict({"models": {"purchase": {"split": {"production": 0.9, "candidate": 0.2}}}})
    with pytest.raises(ServingConfigError, match="unknown key"):
        ServingConfig.from_dict({"models": {"purchase": {"shadows": "x"}}})
    path = tmp_path / "serving.yaml"
    path.write_text(
        "models:\n  purchase:\n    split: {production: 0.9, candidate: 0.1}\n    shadow: challenger\n"
    )
    route = ServingConfig.from_yaml(path).route("purchase")
    assert route.split == (("production", 0.9), ("candidate", 0.1)) and route.shadow == "challenger"


def test_direct_online_read_matches_feasts_public_api(scorer, serving_shop):
    # The hot path reads the online store itself (skipping get_online_features' planning); it must return
    # exactly what get_online_features returns for the same FeatureService, absent users included.
    users = [serving_shop.known_user, UNKNOWN_USER, 1, 2, 3]
    assert scorer.reader.plan("purchase_v1").bulk
    for now in (time.time(), time.time() + 30 * 86400):  # fresh, then past every TTL (masked the same way)
        bulk = scorer.reader.read("purchase_v1", users, now=now)
        public = read_online(scorer.feature_store, "purchase_v1", users, now=now)
        assert bulk.names == public.names
        np.testing.assert_allclose(bulk.values, public.values, rtol=1e-12, equal_nan=True)
        np.testing.assert_allclose(bulk.ages, public.ages, rtol=1e-9, equal_nan=True)
        np.testing.assert_array_equal(bulk.stale, public.stale)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_scoring_on_cuda_matches_cpu(serving_shop):
    users = [serving_shop.known_user, UNKNOWN_USER, 1, 2, 3]
    cpu = Scorer(serving_shop.settings.with_(device="cpu"))
    gpu = Scorer(serving_shop.settings.with_(device="cuda"))
    try:
        on_gpu = gpu.score_many(users)
        assert next(gpu.models.get(gpu.resolve("purchase", "production")).parameters()).is_cuda
        for a, b in zip(cpu.score_many(users), on_gpu, strict=True):
            assert b.probability == pytest.approx(a.probability, abs=1e-5)
    finally:
        cpu.close()
        gpu.close()


@pytest.fixture(scope="module")
def redis_settings(serving_shop):
    """The same shop served from the Redis profile: Feast SQL registry in a fresh PostgreSQL database, online
    store in Redis database 6. Skipped, with the reason, when either server is unreachable."""
    import uuid

    import redis
    import sqlalchemy as sa

    from registry import flow as jobs

    redis_url = os.environ.get("SHOPSCORE_TEST_REDIS_URL", "127.0.0.1:6379")
    host, port = redis_url.split(",")[0].split(":")
    admin_url = os.environ.get(
        "SHOPSCORE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    admin = sa.create_engine(admin_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    try:
        # Database 6 is this test's own: clear what an earlier run of another shop left under the same keys.
        redis.Redis(host=host, port=int(port), db=6, socket_connect_timeout=2).flushdb()
        with admin.connect() as conn:
            database = f"serving_feast_{uuid.uuid4().hex[:8]}"
            conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
    except Exception as exc:  # unreachable servers skip these tests and say why
        admin.dispose()
        pytest.skip(f"Redis or PostgreSQL unreachable ({type(exc).__name__}: {exc})")
    mp = pytest.MonkeyPatch()
    mp.setenv("SHOPSCORE_REDIS", f"{host}:{port},db=6")
    mp.setenv("SHOPSCORE_FEAST_REGISTRY_URL", f"{admin_url.rsplit('/', 1)[0]}/{database}")
    settings = serving_shop.settings.with_(feast_profile="redis")
    jobs.apply_features(settings)
    jobs.materialize_features(settings)
    yield settings
    mp.undo()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    admin.dispose()


@pytest.mark.redis
@pytest.mark.postgres
def test_redis_profile_serves_the_same_features_and_scores(redis_settings, scorer, serving_shop):
    users = [serving_shop.known_user, UNKNOWN_USER, 1, 2, 3]
    on_redis = Scorer(redis_settings)
    try:
        assert on_redis.reader.plan("purchase_v1").bulk
        now = time.time()
        public = read_online(on_redis.feature_store, "purchase_v1", users, now=now).values
        # Twice: the Redis store once mutated the feature list it was given, breaking the second read.
        for _ in range(2):
            values = on_redis.reader.read("purchase_v1", users, now=now).values
            np.testing.assert_allclose(values, public, rtol=1e-12, equal_nan=True)
        for a, b in zip(scorer.score_many(users), on_redis.score_many(users), strict=True):
            assert (b.version, b.cold_start, b.stale) == (a.version, a.cold_start, a.stale)
            assert b.probability == pytest.approx(a.probability, abs=1e-6)
    finally:
        on_redis.close()


def test_a_feature_service_missing_from_feast_names_the_fix(scorer):
    with pytest.raises(FeatureRepoError, match="shopscore features apply"):
        scorer.reader.plan("no_such_service")
