"""The HTTP API over one shared scorer: answers, JSON errors, alias moves, health, readiness, metrics."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import pytest
from fastapi.testclient import TestClient

from registry.model_registry.artifacts import fetch_artifact
from registry.scoring import Scorer
from registry.serving.app import create_app

if TYPE_CHECKING:
    from serving_fixtures import ServingShop

pytest_plugins = ["serving_fixtures"]  # the session-wide tiny shop

TOKEN = {"X-Promoter-Token": "serving-test-token"}  # serving_fixtures.py sets it on the server side


@pytest.fixture(scope="module")
def scorer(serving_shop: ServingShop) -> Scorer:
    scorer = Scorer(serving_shop.settings)
    yield scorer
    scorer.close()


@pytest.fixture(scope="module")
def client(scorer: Scorer) -> TestClient:
    with TestClient(create_app(scorer=scorer)) as client:
        yield client


def test_score_one_user(client, serving_shop):
    body = client.get(f"/v1/score/{serving_shop.known_user}").json()
    assert body["user_id"] == serving_shop.known_user and body["version"] == serving_shop.v1.version
    assert body["alias"] == "production" and body["cold_start"] is False
    other = client.get(f"/v1/score/{serving_shop.known_user}", params={"alias": "candidate"}).json()
    assert other["version"] == serving_shop.v2.version


def test_score_batch_keeps_order_and_flags_unknown_users(client, serving_shop):
    users = [serving_shop.known_user, 10**12, 3]
    response = client.post("/v1/score", json={"user_ids": users})
    assert response.status_code == 200
    scores = response.json()["scores"]
    assert [s["user_id"] for s in scores] == users and scores[1]["cold_start"] is True


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "error", "says"),
    [
        ("get", "/v1/score/abc", {}, 422, "InvalidUserId", "is not an integer"),
        ("get", "/v1/score/99999999999999999999", {}, 422, "InvalidUserId", "int64"),
        ("get", "/v1/score/1", {"params": {"alias": "nope"}}, 404, "UnknownAlias", "models promote"),
        ("get", "/v1/score/1", {"params": {"model": "nope"}}, 404, "UnknownModel", "models list"),
        ("get", "/v1/score/1", {"params": {"alias": "9bad"}}, 422, "InvalidInput", "starting with a letter"),
        ("post", "/v1/score", {"json": {"user_ids": ["x"]}}, 422, "InvalidRequest", "user_ids"),
        ("post", "/v1/score", {"json": {}}, 422, "InvalidRequest", "Field required"),
        ("get", "/v1/features/1.5", {}, 422, "InvalidUserId", "is not an integer"),
    ],
)
def test_bad_requests_get_a_json_error_saying_what_to_do(client, method, path, kwargs, status, error, says):
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error and says in body["detail"]


def test_features_for_applications(client, serving_shop):
    body = client.get(f"/v1/features/{serving_shop.known_user}").json()
    assert body["feature_service"] == "purchase_v1" and body["version"] == serving_shop.v1.version
    assert body["features"]["view_count_30d"] is not None and body["cold_start"] is False
    assert len(body["features"]) == len(serving_shop.v1.lineage["feature_refs"])


def test_models_lists_aliases(client, serving_shop):
    (purchase,) = [m for m in client.get("/v1/models").json() if m["name"] == "purchase"]
    assert purchase["aliases"]["production"] == serving_shop.v1.version


def test_alias_moves_need_the_token_and_pass_the_promotion_checks(client, serving_shop, tmp_path):
    shop = serving_shop
    url = "/v1/models/purchase/aliases/production"
    move = {"version": shop.v2.version, "reason": "http test", "force": True}
    missing = client.post(url, json=move)
    assert missing.status_code == 403 and "X-Promoter-Token" in missing.json()["detail"]
    assert client.post(url, json=move, headers={"X-Promoter-Token": "wrong"}).status_code == 403
    assert client.post(url, json={**move, "version": 999}, headers=TOKEN).status_code == 404
    assert client.post(url, json={"version": 1}, headers=TOKEN).status_code == 422  # no reason
    # A version whose test metric is far worse than production's is refused by the promotion check.
    artifact = fetch_artifact(shop.v1.artifact_uri, shop.v1.sha256)
    worse = shop.registry.register_version(
        "purchase",
        shutil.copytree(artifact, tmp_path / "worse"),
        lineage=shop.v1.lineage,
        metrics={**shop.v1.metrics, "test_pr_auc": -1.0},
        params=shop.v1.params,
        created_by="test",
    )
    refused = client.post(url, json={"version": worse.version, "reason": "worse"}, headers=TOKEN)
    assert refused.status_code == 409 and refused.json()["error"] == "PromotionRefused"
    assert "test_pr_auc" in refused.json()["reasons"][0]
    try:
        moved = client.post(url, json=move, headers=TOKEN)
        assert moved.status_code == 200 and moved.json()["to_version"] == shop.v2.version
        # The replica that moved the alias serves the new version on the very next request.
        assert client.get("/v1/score/1").json()["version"] == shop.v2.version
    finally:
        shop.registry.set_alias(
            "purchase", "production", shop.v1.version, reason="back", actor="test", force=True
        )
        client.app.state.scorer.invalidate("purchase")


def test_health_readiness_and_metrics(client, scorer, serving_shop):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["version"] == serving_shop.v1.version
    client.get("/v1/score/abc")
    client.get("/v1/score/1")
    text = client.get("/metrics").text
    assert 'shopscore_request_seconds_bucket{le="0.001",route="/v1/score/{user_id}"}' in text
    assert 'shopscore_errors_total{route="/v1/score/{user_id}",status="422"}' in text
    assert (
        f'shopscore_served_version{{alias="production",model="purchase"}} {float(serving_shop.v1.version)}'
        in text
    )
    with TestClient(create_app(scorer=scorer, ready_alias="missing")) as not_ready:
        response = not_ready.get("/readyz")
        assert response.status_code == 503 and "no alias 'missing'" in response.json()["detail"]


def test_a_server_on_an_old_schema_refuses_to_start(serving_shop, tmp_path):
    settings = serving_shop.settings.with_(database_url=f"sqlite:///{tmp_path / 'absent.db'}")
    with pytest.raises(Exception, match="shopscore db upgrade"):
        with TestClient(create_app(settings)):
            pass
