"""Each head is served under its own answer field, never as a probability: real, tiny spend and
next_category models trained on the session's serving shop, in Python, over HTTP and in the OpenAPI spec."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import pytest
from fastapi.testclient import TestClient

from registry import flow as jobs
from registry.features.online import read_online
from registry.model_registry.artifacts import fetch_artifact
from registry.modeling.shop_model import ShopModel
from registry.modeling.training import TrainConfig
from registry.scoring import Scorer
from registry.serving.app import create_app

if TYPE_CHECKING:
    from serving_fixtures import ServingShop

pytest_plugins = ["serving_fixtures"]  # the session-wide tiny shop
UNKNOWN_USER = 10**12


@pytest.fixture(scope="module")
def scorer(serving_shop: ServingShop) -> Scorer:
    for head in ("spend", "next_category"):
        spec = jobs.TrainSpec(model_name=head, head=head, train=TrainConfig(epochs=2, progress=False))
        version = jobs.train(serving_shop.settings, spec)
        serving_shop.registry.set_alias(head, "production", version.version, reason="heads", actor="test")
    scorer = Scorer(serving_shop.settings)
    yield scorer
    scorer.close()


def expected(scorer: Scorer, model: str, users: list[int]) -> np.ndarray:
    """The model's predictions on the features Feast's public API returns: what serving must answer."""
    version = scorer.model_registry.resolve(model, "production")
    shop_model = ShopModel.from_pretrained(fetch_artifact(version.artifact_uri, version.sha256))
    read = read_online(scorer.feature_store, version.feature_service, users, now=time.time())
    return shop_model.predict_frame(read.frame().astype("float64"))


# Serving answers come from another batch than `expected`'s forward pass, so on some CPUs they differ in the last
# float32 bits: compare probabilities with a tolerance, never with ==.
TOLERANCE = {"rel": 1e-5, "abs": 1e-6}


def assert_top_categories(served, probabilities: np.ndarray, categories: list[str], k: int) -> None:
    """`served` is the k most likely categories of `probabilities`, best first, with their probabilities.
    Two categories may swap places only where their probabilities tie within the tolerance."""
    best = np.argsort(-probabilities, kind="stable")[:k]
    names = [c.category for c in served]
    assert len(names) == len(set(names)) == k, names
    assert [c.probability for c in served] == pytest.approx(probabilities[best].tolist(), **TOLERANCE)
    for position, (name, i) in enumerate(zip(names, best, strict=True)):
        if name != categories[i]:  # a near-tie: this category's own probability is that of the position
            assert probabilities[categories.index(name)] == pytest.approx(probabilities[i], **TOLERANCE), (
                position,
                names,
                [categories[j] for j in best],
            )


def test_spend_is_an_expected_amount_not_a_probability(scorer, serving_shop):
    users = [serving_shop.known_user, UNKNOWN_USER, 1, 2]
    scores = scorer.score_many(users, model="spend")
    for s, amount in zip(scores, expected(scorer, "spend", users), strict=True):
        assert (s.head, s.answer, s.probability, s.top_categories) == ("spend", "expected_spend", None, None)
        assert s.expected_spend == pytest.approx(float(amount), **TOLERANCE) and s.expected_spend >= 0
        assert s.value == s.expected_spend
    assert scores[1].cold_start


def test_next_category_answers_the_top_categories_best_first(scorer, serving_shop):
    users = [serving_shop.known_user, UNKNOWN_USER, 1]
    scores = scorer.score_many(users, model="next_category")
    head = scorer.models.get(scorer.resolve("next_category", "production")).head
    k = min(head.config.top_k, len(head.config.categories))
    categories = list(head.config.categories)
    reference = expected(scorer, "next_category", users)
    for s, probabilities in zip(scores, reference, strict=True):
        assert (s.head, s.answer, s.probability, s.expected_spend) == (
            "next_category",
            "top_categories",
            None,
            None,
        )
        assert_top_categories(s.top_categories, probabilities, categories, k)
    # One user alone (a batch of 1) gets the answer it gets in the batch of 3, up to float32 rounding.
    alone = scorer.score(users[0], model="next_category").top_categories
    assert_top_categories(alone, reference[0], categories, k)


def test_http_and_openapi_carry_each_heads_answer(scorer, serving_shop):
    with TestClient(create_app(scorer=scorer)) as client:
        user = serving_shop.known_user
        purchase = client.get(f"/v1/score/{user}").json()
        spend = client.get(f"/v1/score/{user}", params={"model": "spend"}).json()
        batch = client.post("/v1/score", json={"user_ids": [user], "model": "next_category"}).json()
        spec = client.get("/openapi.json").json()
    assert purchase["answer"] == "probability" and 0 < purchase["probability"] < 1
    assert purchase["expected_spend"] is None and purchase["top_categories"] is None
    assert spend["answer"] == "expected_spend" and spend["probability"] is None
    assert spend["expected_spend"] == pytest.approx(scorer.score(user, model="spend").expected_spend)
    (category,) = batch["scores"]
    assert category["answer"] == "top_categories" and category["probability"] is None
    assert category["top_categories"] == [
        {"category": c.category, "probability": pytest.approx(c.probability)}
        for c in scorer.score(user, model="next_category").top_categories
    ]
    schema = spec["components"]["schemas"]
    assert set(schema["ScoreOut"]["properties"]["answer"]["enum"]) == {
        "probability",
        "expected_spend",
        "top_categories",
    }
    assert set(schema["CategoryProbabilityOut"]["properties"]) == {"category", "probability"}
