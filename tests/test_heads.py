"""The built-in heads train through the same loop: calibrated purchase, spend regression, next category;
and the concat encoder combines encoders and round-trips."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from registry.features.contract import feature_columns
from registry.features.training_set import LabelSpec, compute_labels
from registry.modeling.metrics import (
    best_f1_threshold,
    expected_calibration_error,
    f1_at,
    regression_metrics,
    top_k_accuracy,
)
from registry.modeling.shop_model import ShopModel
from registry.modeling.training import TrainConfig, evaluate, fit
from registry.plugin_host import PluginError

CATEGORIES = ["books", "garden", "shoes", "toys"]


def shop_frame(n: int, seed: int, purchase_offset: float = -0.5) -> pd.DataFrame:
    """Feature rows with a label per head, each learnable from the features.

    `purchase_offset` moves the purchase base rate (a model trained at one rate is miscalibrated at another).
    """
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        rng.poisson(3.0, size=(n, len(feature_columns()))).astype(float), columns=feature_columns()
    )
    logit = 0.8 * (frame["cart_count_7d"] - 3) + purchase_offset
    frame["label_purchase"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    # Spend: buyers spend more the more they viewed; most rows spend nothing.
    frame["label_spend"] = frame["label_purchase"] * rng.gamma(2.0, 10.0 + 5.0 * frame["view_count_7d"])
    # First category bought: set by which of four counts is largest; null for non-buyers.
    signal = frame[["view_count_1d", "view_count_7d", "cart_count_1d", "cart_count_7d"]].to_numpy()
    category = np.array(CATEGORIES)[np.argmax(signal + rng.normal(0, 0.5, signal.shape), axis=1)]
    frame["label_next_category"] = pd.Series(category, dtype="string").where(frame["label_purchase"] == 1)
    return frame


def build(
    head: str, head_config: dict | None = None, encoder: str = "mlp", encoder_config: dict | None = None
):
    return ShopModel.build(
        encoder,
        encoder_config or {"features": feature_columns(), "hidden": [16]},
        head,
        {"horizon_days": 7, **(head_config or {})},
        feature_service="purchase_v1",
    )


def test_feature_columns_used_by_the_fixture_exist():
    assert {"cart_count_7d", "view_count_7d", "view_count_1d", "cart_count_1d"} <= set(feature_columns())


# --- purchase: calibration and F1 threshold ------------------------------------------------------------


def uncalibrated(model: ShopModel) -> ShopModel:
    raw = copy.deepcopy(model)
    raw.head.log_temperature.zero_()
    raw.head.calibration_bias.zero_()
    return raw


def raw_outputs(model: ShopModel, frame: pd.DataFrame) -> torch.Tensor:
    with torch.no_grad():
        return model(model.encoder.featurize(frame))[0]


def test_calibration_on_validation_fixes_a_shifted_base_rate():
    # Trained where most users buy; the validation window and later test users buy far less often (a sale
    # ended), so the trained network's raw probabilities are far too high there.
    train, early_valid = (
        shop_frame(2000, seed=0, purchase_offset=1.0),
        shop_frame(800, seed=3, purchase_offset=1.0),
    )
    valid, test = (
        shop_frame(1500, seed=1, purchase_offset=-2.5),
        shop_frame(3000, seed=2, purchase_offset=-2.5),
    )
    model = fit(build("purchase"), train, early_valid, TrainConfig(epochs=15, progress=False)).model
    model.head.calibrate(raw_outputs(model, valid), model.head.target(valid))
    y = test["label_purchase"].to_numpy()
    ece_raw = expected_calibration_error(y, uncalibrated(model).predict_frame(test))
    ece_calibrated = expected_calibration_error(y, model.predict_frame(test))
    assert ece_raw > 0.1, "the set-up must start miscalibrated for the test to mean anything"
    assert ece_calibrated < 0.05 and ece_calibrated < ece_raw / 3
    # Calibration is monotone: ranking metrics do not move. Up to float32 rounding: two raw probabilities a
    # few ulps apart (there are such pairs) may round to one value on one side and not on the other, and
    # each such tie moves the AUC by 0.5 / (positives x negatives), ~5e-7 here; a non-monotone map moves it
    # by far more.
    raw_metrics = uncalibrated(model).head.metrics(y, uncalibrated(model).predict_frame(test))
    assert evaluate(model, test, "t")["t_roc_auc"] == pytest.approx(raw_metrics["roc_auc"], abs=1e-5)


def test_calibration_keeps_a_well_calibrated_model_calibrated():
    model = fit(
        build("purchase"), shop_frame(2000, 0), shop_frame(1000, 1), TrainConfig(epochs=10, progress=False)
    )
    test = shop_frame(3000, seed=2)
    assert evaluate(model.model, test, "test")["test_ece"] < 0.04


def test_f1_threshold_is_chosen_on_validation_and_applied_to_test(tmp_path):
    valid, test = shop_frame(1000, 1), shop_frame(1500, 2)
    model = fit(build("purchase"), shop_frame(2000, 0), valid, TrainConfig(epochs=10, progress=False)).model
    chosen = best_f1_threshold(valid["label_purchase"].to_numpy(), model.predict_frame(valid))
    assert float(model.head.threshold) == pytest.approx(chosen)
    metrics = evaluate(model, test, "test")
    assert metrics["test_threshold"] == pytest.approx(chosen)
    assert metrics["test_f1"] == pytest.approx(
        f1_at(test["label_purchase"].to_numpy(), model.predict_frame(test), chosen)
    )
    assert metrics["test_f1"] > 0.5
    # Temperature, bias and threshold are buffers: saved and loaded with the weights.
    loaded = ShopModel.from_pretrained(model.save_pretrained(tmp_path / "m"))
    assert float(loaded.head.threshold) == pytest.approx(chosen)
    np.testing.assert_allclose(loaded.predict_frame(test), model.predict_frame(test), rtol=1e-6)


def test_purchase_model_saved_before_calibration_loads_with_identity_calibration(tmp_path):
    from safetensors.torch import load_file, save_file

    path = build("purchase").save_pretrained(tmp_path / "old")
    state = load_file(str(path / "model.safetensors"))
    old = {k: v for k, v in state.items() if not k.startswith("head.") or k.startswith("head.linear")}
    save_file(old, str(path / "model.safetensors"), metadata={"format": "shopscore-model/1"})
    loaded = ShopModel.from_pretrained(path)
    assert float(loaded.head.log_temperature) == 0.0 and float(loaded.head.threshold) == 0.5


def test_best_f1_threshold_and_f1():
    y = np.array([0, 0, 1, 1, 1])
    p = np.array([0.1, 0.6, 0.4, 0.8, 0.9])
    assert best_f1_threshold(y, p) == pytest.approx(0.4)  # flag 4 rows: tp=3, F1 = 6/7
    assert f1_at(y, p, 0.4) == pytest.approx(6 / 7)
    assert f1_at(y, p, 0.95) == 0.0


# --- spend ---------------------------------------------------------------------------------------------


def test_spend_head_predicts_non_negative_amounts_better_than_the_mean():
    train, valid, test = shop_frame(2000, 0), shop_frame(800, 1), shop_frame(1500, 2)
    head_config = {"mean_spend": float(train["label_spend"].mean())}
    model = fit(build("spend", head_config), train, valid, TrainConfig(epochs=30, progress=False)).model
    predicted = model.predict_frame(test)
    assert (predicted >= 0).all()
    metrics = evaluate(model, test, "test")
    assert {"test_mae", "test_rmse", "test_mean_label"} <= set(metrics)
    constant = regression_metrics(test["label_spend"], np.full(len(test), train["label_spend"].mean()))
    # Spend is noisy (even the true conditional mean only reaches RMSE ~0.91 of the constant's), so compare
    # MAE with a margin and RMSE without one.
    assert metrics["test_mae"] < 0.9 * constant["mae"] and metrics["test_rmse"] < constant["rmse"]
    # The conditional mean, summed over users, is about the total spend.
    assert predicted.sum() == pytest.approx(test["label_spend"].sum(), rel=0.2)


def test_regression_metrics():
    m = regression_metrics(np.array([0.0, 10.0]), np.array([1.0, 7.0]))
    assert m["mae"] == pytest.approx(2.0) and m["rmse"] == pytest.approx(np.sqrt(5.0))


# --- next_category ---------------------------------------------------------------------------------------


def test_next_category_learns_from_buyers_only_and_keeps_its_vocabulary(tmp_path):
    from plugins.next_category import NextCategoryHead

    train, valid, test = shop_frame(3000, 0), shop_frame(1000, 1), shop_frame(2000, 2)
    config = NextCategoryHead.config_from_data({"horizon_days": 7}, train)
    assert config["categories"] == CATEGORIES
    model = fit(build("next_category", config), train, valid, TrainConfig(epochs=30, progress=False)).model
    metrics = evaluate(model, test, "test")
    buyers = int(test["label_next_category"].notna().sum())
    assert metrics["test_n"] == buyers < len(test), "rows without a purchase are not evaluated"
    assert metrics["test_top1_accuracy"] > 0.5  # chance is about 0.25
    assert metrics["test_top3_accuracy"] > metrics["test_top1_accuracy"]
    loaded = ShopModel.from_pretrained(model.save_pretrained(tmp_path / "m"))
    assert loaded.head.config.categories == CATEGORIES
    assert loaded.predict_frame(test).shape == (len(test), len(CATEGORIES))


def test_next_category_counts_an_unseen_category_as_a_miss():
    model = build("next_category", {"categories": ["a", "b"]})
    target = model.head.target(pd.DataFrame({"label_next_category": ["b", "zzz"]}))
    assert target.tolist() == [1, -1]
    assert top_k_accuracy(np.array([1, -1]), np.array([[0.2, 0.8], [0.9, 0.1]]), 1) == 0.5


def test_next_category_without_a_vocabulary_says_how_to_get_one():
    with pytest.raises(
        PluginError, match="head 'next_category'.*needs at least 2 categories.*registry.flow.train"
    ):
        build("next_category")


def test_next_category_label_is_the_first_purchase_in_the_window():
    t = pd.Timestamp("2024-03-10", tz="UTC")
    events = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 2, 3],
            "event_type": ["purchase", "purchase", "view", "purchase", "purchase"],
            "event_time": [t + pd.Timedelta(days=d) for d in (3, 1, 0.5, 9, -1)],
            "category": ["toys", "books", "garden", "shoes", "shoes"],
            "price": [1.0, 2.0, 3.0, 4.0, 5.0],
            "quantity": [1, 1, 1, 1, 1],
        }
    )
    from plugins.next_category import NextCategoryHead
    from plugins.purchase import PurchaseHead

    rows = pd.DataFrame({"user_id": [1, 2, 3], "event_timestamp": [t, t, t]})
    out = rows.assign(
        **{
            h.label: compute_labels(events, rows, 7, LabelSpec(h.label, h.compute_label)).to_numpy()
            for h in (NextCategoryHead, PurchaseHead)
        }  # fmt: skip
    ).set_index("user_id")
    assert out.loc[1, "label_next_category"] == "books"  # earliest purchase after the cutoff, not a view
    assert pd.isna(out.loc[2, "label_next_category"])  # bought after the horizon
    assert pd.isna(out.loc[3, "label_next_category"])  # bought before the cutoff
    assert out["label_purchase"].tolist() == [1, 0, 0]


# --- concat ----------------------------------------------------------------------------------------------


def concat_config() -> dict:
    part = {"name": "mlp", "config": {"features": feature_columns(), "hidden": [8]}}
    small = {"name": "mlp", "config": {"features": ["cart_count_7d", "view_count_7d"], "hidden": [4]}}
    return {"parts": [part, small]}


def test_concat_width_is_the_sum_and_it_round_trips(tmp_path):
    model = build("purchase", encoder="concat", encoder_config=concat_config())
    assert model.encoder.output_dim == 8 + 4
    assert model.features == feature_columns()  # the union, each column once
    train, valid, test = shop_frame(1000, 0), shop_frame(500, 1), shop_frame(500, 2)
    model = fit(model, train, valid, TrainConfig(epochs=5, progress=False)).model
    loaded = ShopModel.from_pretrained(model.save_pretrained(tmp_path / "m"))
    np.testing.assert_allclose(loaded.predict_frame(test), model.predict_frame(test), rtol=1e-6)
    assert torch.equal(loaded.encoder.parts[1].mean, model.encoder.parts[1].mean)


def test_concat_names_a_bad_part():
    with pytest.raises(PluginError, match="encoder 'concat' .*part 0 is .*'name' .*'config'"):
        build("purchase", encoder="concat", encoder_config={"parts": [{"encoder": "mlp"}]})
    with pytest.raises(PluginError, match="no encoder named 'nope'.*Install the plugin package"):
        build("purchase", encoder="concat", encoder_config={"parts": [{"name": "nope", "config": {}}]})


def test_train_spec_builds_a_concat_for_several_encoders():
    from feast.types import Array, Float64, Int64

    from registry.flow import TrainSpec

    fields = {"a": Float64, "seq_event_type": Array(Int64)}
    assert TrainSpec(encoder="mlp").encoder_plan(fields) == ("mlp", {"features": ["a"]})
    spec = TrainSpec(encoder=["mlp", "sequence"], encoder_config={"mlp": {"hidden": [4]}})
    name, config = spec.encoder_plan(fields)
    assert name == "concat"
    assert config == {
        "parts": [
            {"name": "mlp", "config": {"features": ["a"], "hidden": [4]}},
            {"name": "sequence", "config": {"features": ["seq_event_type"]}},
        ]
    }
    # The keyed form works with one encoder too.
    keyed = TrainSpec(encoder="mlp", encoder_config={"mlp": {"hidden": [4]}}).encoder_plan(fields)
    assert keyed == ("mlp", {"features": ["a"], "hidden": [4]})
    with pytest.raises(ValueError, match="encoder_config must map encoder names"):
        TrainSpec(encoder=["mlp", "sequence"], encoder_config={"hidden": [4]}).encoder_plan(fields)
    with pytest.raises(
        PluginError, match="encoder 'mlp' of plugin 'mlp'.* select_features.*mlp encoder reads scalar"
    ):
        TrainSpec(encoder="mlp").encoder_plan({"seq_event_type": Array(Int64)})


def test_concat_builds_its_parts_from_the_host_the_model_is_built_with():
    from outside_plugin import acme_shopscore

    import plugins.concat
    import plugins.purchase
    from registry.plugin_host import PluginHost

    host = PluginHost()
    for name, module in [
        ("concat", plugins.concat),
        ("purchase", plugins.purchase),
        ("acme", acme_shopscore),
    ]:
        host.add(module, name)
    parts = {"parts": [{"name": "bag", "config": {"features": ["a"], "width": 3}}]}
    model = ShopModel.build("concat", parts, "purchase", {}, feature_service="s", host=host)
    assert type(model.encoder.parts[0]).__name__ == "BagEncoder"  # not registered in the process-wide host


def test_concat_records_its_parts_plugins_and_names_a_missing_one_on_load(tmp_path):
    import json

    from registry.plugin_host import PluginError

    path = build("purchase", encoder="concat", encoder_config=concat_config()).save_pretrained(tmp_path / "m")
    config = json.loads((path / "config.json").read_text())
    assert [p["plugin"] for p in config["encoder"]["parts"]] == ["mlp", "mlp"]
    assert config["encoder"]["parts"][0]["package"] == "shopscore"
    config["encoder"]["parts"][1].update(name="bag", plugin="acme", package="shopscore-acme", version="0.3.0")
    config["encoder"]["config"]["parts"][1]["name"] = "bag"
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        PluginError, match=r"needs encoder 'bag' from plugin 'acme'.*pip install shopscore-acme"
    ):
        ShopModel.from_pretrained(path)


def test_the_horizon_is_one_number_from_wherever_it_is_given():
    from registry.errors import UserError
    from registry.flow import resolve_horizon

    assert resolve_horizon(None, {}, None) is None  # derived from the events
    assert resolve_horizon(None, {"horizon_days": 14}, None) == 14  # the head config's is the label's
    assert resolve_horizon(14, {"horizon_days": 14}, None) == 14
    with pytest.raises(
        UserError, match=r"given twice.*--horizon-days = 7, the head config's horizon_days = 14"
    ):
        resolve_horizon(7, {"horizon_days": 14}, None)
