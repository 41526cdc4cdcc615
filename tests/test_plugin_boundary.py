"""Parts are checked where core calls them: a plugin that breaks its contract, or raises, is stopped at the first
training batch or when its version is loaded to serve, by one PluginError naming plugin, package, part and
method; and a version that fails is never served."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
import torch
from fastapi.testclient import TestClient
from torch import nn

import plugins.purchase
from registry.modeling.shop_model import ShopModel
from registry.modeling.training import TrainConfig, fit
from registry.plugin_api import NUMBER, Answer, Encoder, hookimpl
from registry.plugin_host import PluginError, PluginHost
from registry.scoring import Scorer
from registry.serving.app import create_app

if TYPE_CHECKING:
    from serving_fixtures import ServingShop

pytest_plugins = ["serving_fixtures"]


@dataclass
class OddConfig:
    features: list[str]
    width: int = 4
    mode: str = "ok"  # ok | three_d | one_wider | raise_in_featurize | integer


class OddEncoder(Encoder):
    """An encoder whose `mode` breaks one part of the contract."""

    name = "odd"
    config_class = OddConfig

    def __init__(self, config: OddConfig) -> None:
        super().__init__(config)
        self.linear = nn.Linear(len(config.features), config.width + (config.mode == "one_wider"))

    @property
    def features(self) -> list[str]:
        return list(self.config.features)

    @property
    def output_dim(self) -> int:
        return self.config.width

    def featurize(self, frame: pd.DataFrame) -> dict[str, torch.Tensor]:
        if self.config.mode == "raise_in_featurize":
            raise KeyError("column 'x' was renamed")
        values = frame[self.config.features].to_numpy(dtype="float64", na_value=np.nan)
        return {"x": torch.as_tensor(np.nan_to_num(values), dtype=torch.float32)}

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        h = self.linear(batch["x"])
        if self.config.mode == "three_d":
            return h.unsqueeze(1).expand(-1, 3, -1)  # (B, 3, D): would broadcast into three answers per user
        if self.config.mode == "integer":
            return h.long()
        return h


class WrongAnswerHead(plugins.purchase.PurchaseHead):
    """Declares a probability but answers a number outside [0, 1]."""

    name = "wrong_answer"

    def answers(self, predictions: np.ndarray) -> list:
        return (predictions * 10 + 1).tolist()


class Odd:
    @staticmethod
    @hookimpl
    def register_encoders(register):
        register(OddEncoder)

    @staticmethod
    @hookimpl
    def register_heads(register):
        register(WrongAnswerHead)


def host() -> PluginHost:
    h = PluginHost()
    h.add(plugins.purchase, "purchase", package="shopscore", version="0.1.0")
    h.add(Odd, "odd", package="shopscore-odd", version="2.0")
    return h


def frame(n: int = 64) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    out = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    out["label_purchase"] = (out["a"] > 0).astype(int)
    return out


def train(mode: str, head: str = "purchase") -> ShopModel:
    model = ShopModel.build(
        "odd", {"features": ["a", "b"], "mode": mode}, head, {}, feature_service="s", host=host()
    )
    return fit(model, frame(), frame(), TrainConfig(epochs=1, progress=False)).model


@pytest.mark.parametrize(
    ("mode", "method", "detail"),
    [
        ("three_d", "forward", r"forward returned \(64, 3, 4\) torch.float32; an encoder must return"),
        ("one_wider", "forward", r"forward returned \(64, 5\) .*\(batch rows, output_dim\) = \(64, 4\)"),
        ("integer", "forward", r"forward returned \(64, 4\) torch.int64; an encoder must return a floating"),
        ("raise_in_featurize", "featurize", r"KeyError: \"column 'x' was renamed\""),
    ],
)
def test_a_broken_encoder_is_stopped_before_training_naming_plugin_package_part_and_method(
    mode, method, detail
):
    with pytest.raises(PluginError) as caught:
        train(mode)
    message = str(caught.value)
    assert message.startswith(
        f"encoder 'odd' of plugin 'odd' (package shopscore-odd 2.0) failed in {method}: "
    )
    assert "SHOPSCORE_DISABLE_PLUGINS=odd" in message
    assert __import__("re").search(detail, message), message


def test_an_answer_of_the_wrong_type_is_stopped_on_the_first_training_batch():
    with pytest.raises(
        PluginError,
        match=r"head 'wrong_answer' of plugin 'odd' \(package shopscore-odd 2.0\) failed in answers: TypeError: "
        r"answer 'probability' must be a probability in \[0, 1\]: .* is above the maximum 1.0",
    ):
        train("ok", head="wrong_answer")


def test_a_version_that_fails_its_check_on_load_is_refused(tmp_path):
    model = train("ok")
    model.encoder.config.mode = "three_d"  # as if a new release of the plugin broke its forward pass
    path = model.save_pretrained(tmp_path / "m")
    loaded = ShopModel.from_pretrained(path, host=host())
    with pytest.raises(PluginError, match="encoder 'odd' of plugin 'odd'.*failed in forward"):
        loaded.self_check()


def test_answer_names_are_checked_at_registration():
    assert Answer("expected_count", NUMBER, "x").problem() is None
    assert "taken by a Score field" in Answer("value", NUMBER, "x").problem()
    assert "lower-case Python identifier" in Answer("Churn-Prob", NUMBER, "x").problem()


def test_a_served_version_whose_plugin_breaks_is_refused_never_served(
    serving_shop: ServingShop, monkeypatch: pytest.MonkeyPatch
):
    from plugins.mlp import MLPEncoder

    healthy = MLPEncoder.forward
    # A broken release of the installed `mlp` plugin: its forward pass now returns one row per user x 3.
    monkeypatch.setattr(
        MLPEncoder, "forward", lambda self, batch: healthy(self, batch).unsqueeze(1).repeat(1, 3, 1)
    )
    scorer = Scorer(serving_shop.settings)
    try:
        with pytest.raises(PluginError, match=r"encoder 'mlp' of plugin 'mlp' \(package shopscore .*forward"):
            scorer.score(serving_shop.known_user)
        assert scorer.loaded_versions() == []  # nothing was kept to serve
        with TestClient(create_app(scorer=scorer)) as client:
            answer = client.get(f"/v1/score/{serving_shop.known_user}")
        assert answer.status_code == 503
        assert (
            answer.json()["error"] == "PluginError"
            and "SHOPSCORE_DISABLE_PLUGINS=mlp" in answer.json()["detail"]
        )
    finally:
        scorer.close()
