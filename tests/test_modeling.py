"""Models round-trip through config.json + model.safetensors exactly, and refuse what they can't load."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from registry.features.contract import feature_columns
from registry.modeling.shop_model import ModelFormatError, ShopModel
from registry.modeling.training import SplitError, Splits, TrainConfig, fit, held_out
from registry.plugin_host import PluginError, load_plugins


def feature_frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        rng.poisson(3.0, size=(n, len(feature_columns()))).astype(float), columns=feature_columns()
    )
    frame.loc[rng.random(n) < 0.2, "hours_since_last_purchase"] = np.nan
    # A learnable label: more carts in the last week, more purchases.
    logit = 0.8 * (frame["cart_count_7d"] - 3) - 0.5
    frame["label_purchase"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


def build() -> ShopModel:
    return ShopModel.build(
        "mlp",
        {"features": feature_columns(), "hidden": [16]},
        "purchase",
        {"horizon_days": 7},
        feature_service="purchase_v1",
    )


def test_save_and_load_give_identical_predictions(tmp_path):
    model = build()
    result = fit(model, feature_frame(), feature_frame(seed=1), TrainConfig(epochs=5, progress=False))
    frame = feature_frame(seed=2)
    before = result.model.predict_frame(frame)
    result.model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    loaded = ShopModel.from_pretrained(tmp_path / "m")
    assert not loaded.training, "from_pretrained returns eval mode"
    np.testing.assert_allclose(loaded.predict_frame(frame), before, rtol=1e-6)
    # Normalisation statistics are fitted on training rows and saved with the weights.
    assert torch.equal(loaded.encoder.mean, result.model.encoder.mean)
    assert not torch.allclose(loaded.encoder.mean, torch.zeros_like(loaded.encoder.mean))


def test_training_learns_the_signal():
    result = fit(
        build(), feature_frame(2000), feature_frame(500, seed=1), TrainConfig(epochs=30, progress=False)
    )
    from registry.modeling.training import evaluate

    test = feature_frame(1000, seed=2)
    metrics = evaluate(result.model, test, "test")
    from sklearn.metrics import roc_auc_score

    oracle = roc_auc_score(test["label_purchase"], test["cart_count_7d"])  # the true score is monotone in it
    assert metrics["test_roc_auc"] > oracle - 0.03


def test_training_is_deterministic_on_cpu():
    runs = [
        fit(build(), feature_frame(), feature_frame(seed=1), TrainConfig(epochs=3, progress=False)).model
        for _ in range(2)
    ]
    frame = feature_frame(seed=5)
    np.testing.assert_array_equal(runs[0].predict_frame(frame), runs[1].predict_frame(frame))


def test_missing_plugin_names_the_package(tmp_path):
    build().save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["encoder"].update(name="fancy", plugin="fancy_plugin", package="acme-encoders", version="1.2.0")
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(PluginError, match=r"encoder 'fancy'.*acme-encoders.*pip install acme-encoders"):
        ShopModel.from_pretrained(tmp_path / "m", host=load_plugins())


def test_not_a_model_directory(tmp_path):
    with pytest.raises(ModelFormatError, match="is not a shopscore model"):
        ShopModel.from_pretrained(tmp_path)


def test_unknown_config_field_is_refused():
    with pytest.raises(PluginError, match=r"encoder 'mlp' .*MLPConfig has no field\(s\) \['hiden'\]"):
        ShopModel.build("mlp", {"features": ["a"], "hiden": [3]}, "purchase", {}, feature_service="s")


def test_splits_refuse_overlapping_label_windows():
    with pytest.raises(SplitError, match="reaches past the validation cutoff"):
        Splits.of(["2024-01-01", "2024-01-10"], "2024-01-12", "2024-01-30", horizon=7)
    with pytest.raises(SplitError, match="reaches past the test cutoff"):
        Splits.of(["2024-01-01"], "2024-01-10", "2024-01-12", horizon=7)
    # Without a validation cutoff (held-out users validate), training labels must still end by the test.
    with pytest.raises(SplitError, match="would overlap the test window"):
        Splits.of(["2024-01-01", "2024-01-10"], None, "2024-01-15", horizon=7)
    s = Splits.of(["2024-01-01", "2024-01-08"], None, "2024-01-15", horizon=7)
    assert s.to_lineage()["valid_cutoff"] is None


def test_default_splits_keep_time_order():
    s = Splits.default_for(
        pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-03-30 18:00", tz="UTC"), 7
    )
    assert s.test_cutoff + pd.Timedelta(days=7) == pd.Timestamp("2024-03-31", tz="UTC")
    assert max(s.train_cutoffs) + pd.Timedelta(days=7) <= s.valid_cutoff
    assert min(s.train_cutoffs) >= pd.Timestamp("2024-01-15", tz="UTC")


def test_held_out_split_is_stable_and_about_a_fifth():
    ids = pd.Series(np.arange(10_000))
    mask = held_out(ids)
    assert 0.18 < mask.mean() < 0.22
    np.testing.assert_array_equal(mask, held_out(ids))
