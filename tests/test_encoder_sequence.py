"""The `sequence` encoder: shapes, padding and empty sequences, save/load, and learning an order signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file
from sklearn.metrics import roc_auc_score

from plugins.sequence import (
    BIAS_SCALE,
    SEQUENCE_COLUMNS,
    SequenceConfig,
    SequenceEncoder,
    age_bucket,
    event_ages,
    gap_bucket,
    right_aligned,
)
from registry.events.generate import generate_events
from registry.features.contract import sequence_columns
from registry.features.sequences import build_user_sequences
from registry.modeling.shop_model import ShopModel
from registry.modeling.training import TrainConfig, fit

TINY = {"max_len": 12, "d_model": 32, "n_heads": 2, "n_layers": 2, "dropout": 0.0, "category_buckets": 64}
VIEW, CART, FAVORITE = 1, 2, 4


def sequence_frame(sequences: list[list[int]], seed: int = 0) -> pd.DataFrame:
    """A feature frame with the user_sequence columns for the given event type sequences; category, price
    and gaps are random (the first event of each user has gap -1, like the pipeline)."""
    rng = np.random.default_rng(seed)
    rows = []
    for events in sequences:
        n = len(events)
        gaps = rng.integers(1, 100_000, n)
        if n:
            gaps[0] = -1
        rows.append(
            {
                "seq_event_type": list(events),
                "seq_category": list(rng.integers(1, 2**20, n)),
                "seq_price_bucket": list(rng.integers(1, 16, n)),
                "seq_seconds_since_prev": list(gaps),
            }
        )
    return pd.DataFrame(rows)


def order_frame(n: int, seed: int) -> pd.DataFrame:
    """Each user has exactly one view and one cart among favorites; label_purchase = 1 iff the view comes
    before the cart. Counts of every event type carry no information about the label."""
    rng = np.random.default_rng(seed)
    sequences, labels = [], []
    for _ in range(n):
        length = int(rng.integers(3, 11))
        events = [FAVORITE] * length
        i, j = rng.choice(length, size=2, replace=False)
        events[i], events[j] = VIEW, CART
        sequences.append(events)
        labels.append(float(i < j))
    frame = sequence_frame(sequences, seed)
    for t in range(1, 7):
        frame[f"count_{t}"] = [float(s.count(t)) for s in sequences]
    frame["label_purchase"] = labels
    return frame


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def build(encoder: str, config: dict) -> ShopModel:
    return ShopModel.build(encoder, config, "purchase", {"horizon_days": 7}, feature_service="test")


def test_featurize_right_aligns_and_forward_shapes() -> None:
    encoder = SequenceEncoder(SequenceConfig(**TINY)).eval()
    frame = sequence_frame([[1, 2, 5], list(range(1, 7)) * 4, []])
    batch = encoder.featurize(frame)
    assert batch["event"].shape == batch["mask"].shape == (3, 12)
    assert batch["event"][0].tolist() == [0] * 9 + [1, 2, 5]  # newest event in the last column
    assert batch["event"][1].tolist() == (list(range(1, 7)) * 4)[-12:]  # only the newest max_len kept
    assert batch["mask"].sum(dim=1).tolist() == [3, 12, 0]
    assert int(batch["category"].max()) < TINY["category_buckets"]  # hashed ids folded into the table
    assert batch["gap"][0, -3] == 1  # first event: "no previous event"
    assert encoder(batch).shape == (3, 32)
    assert encoder.features == list(SEQUENCE_COLUMNS)


def test_empty_and_missing_sequences_give_finite_outputs_and_gradients() -> None:
    encoder = SequenceEncoder(SequenceConfig(**TINY))
    frame = sequence_frame([[], [], [1]])
    frame.loc[1, list(SEQUENCE_COLUMNS)] = None  # a Feast miss (view TTL expired) reads as null
    out = encoder(encoder.featurize(frame))  # (3, D), training mode
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in encoder.parameters() if p.grad is not None)
    encoder.eval()
    with torch.no_grad():  # the eval fast path too
        assert torch.isfinite(encoder(encoder.featurize(frame))).all()


def test_padding_does_not_change_the_representation() -> None:
    small = SequenceEncoder(SequenceConfig(**{**TINY, "max_len": 6})).eval()
    frame = sequence_frame([[1, 2, 5]])
    batch = small.featurize(frame)
    trimmed = {k: v[:, -3:] for k, v in batch.items()}  # the same events without the padding columns
    with torch.no_grad():
        torch.testing.assert_close(small(batch), small(trimmed))


def test_helpers() -> None:
    packed = right_aligned([np.array([1, 2]), np.array([], dtype="int64"), np.array([3, 4, 5, 6])], 3)
    assert packed.tolist() == [[0, 1, 2], [0, 0, 0], [4, 5, 6]]
    assert gap_bucket(np.array([-1, 0, 1, 3, 10**12]), 32).tolist() == [1, 2, 3, 4, 31]


def test_errors_name_the_problem_and_fix() -> None:
    with pytest.raises(ValueError, match="purchase_seq_v1"):
        SequenceEncoder(SequenceConfig(features=["view_count_7d"]))
    with pytest.raises(ValueError, match="not divisible by n_heads"):
        SequenceEncoder(SequenceConfig(d_model=30, n_heads=4))
    encoder = SequenceEncoder(SequenceConfig(**TINY))
    with pytest.raises(KeyError, match="lacks column"):
        encoder.featurize(pd.DataFrame({"seq_event_type": [[1]]}))
    bad = sequence_frame([[1, 2]])
    bad.at[0, "seq_price_bucket"] = [3]
    with pytest.raises(ValueError, match="seq_price_bucket"):
        encoder.featurize(bad)


def test_save_load_round_trip_gives_identical_predictions(tmp_path: Path) -> None:
    frame = order_frame(64, seed=1)
    model = build("sequence", {**TINY, "dropout": 0.1})
    fit(model, frame[:48], frame[48:], TrainConfig(epochs=1, batch_size=16, progress=False, device="cpu"))
    before = model.predict_frame(frame)
    loaded = ShopModel.from_pretrained(model.save_pretrained(tmp_path / "model"))
    np.testing.assert_array_equal(loaded.predict_frame(frame), before)
    assert not loaded.training


def test_learns_the_order_of_events_that_counts_cannot_see() -> None:
    train, valid, test = order_frame(800, 0), order_frame(200, 1), order_frame(400, 2)
    config = TrainConfig(epochs=12, batch_size=64, lr=3e-3, patience=4, progress=False, device="cpu")

    sequence = build("sequence", TINY)
    fit(sequence, train, valid, config)
    sequence_auc = roc_auc_score(test["label_purchase"], sequence.predict_frame(test))

    counts = [f"count_{t}" for t in range(1, 7)]
    mlp = build("mlp", {"features": counts})
    fit(mlp, train, valid, config)
    mlp_auc = roc_auc_score(test["label_purchase"], mlp.predict_frame(test))

    assert sequence_auc > 0.8, sequence_auc
    assert abs(mlp_auc - 0.5) < 0.1, mlp_auc


def test_event_ages_add_the_later_gaps_to_the_newest_age() -> None:
    gaps = np.array([[0.0, 0.0, 60.0, 3600.0], [0.0, 0.0, 0.0, 0.0]])  # right-aligned; padding counts 0
    ages = event_ages(gaps, np.array([120.0, np.nan]))
    np.testing.assert_array_equal(ages[0], [3780.0, 3780.0, 3720.0, 120.0])
    assert np.isnan(ages[1]).all()
    assert age_bucket(np.array([np.nan, 0.0, 59.0, 60.0, 86_400.0]), 20).tolist() == [0, 1, 1, 2, 11]
    assert age_bucket(np.array([1e12]), 20).tolist() == [19]


def test_the_age_anchor_tells_a_recent_sequence_from_an_old_one() -> None:
    """Same events, newest one an hour or three weeks before the features' time: other ages, other outputs.
    Without an anchor among its features the encoder leaves every age unknown."""
    frame = pd.concat([sequence_frame([[VIEW, CART]], seed=3)] * 2, ignore_index=True)
    frame["hours_since_last_event"] = [1.0, 21 * 24.0]
    fields = {
        name: None for name in [*SEQUENCE_COLUMNS, "last_queries", "spend_30d", "hours_since_last_event"]
    }
    features = SequenceEncoder.select_features(fields)
    assert features == [*SEQUENCE_COLUMNS, "hours_since_last_event"]
    encoder = SequenceEncoder(SequenceConfig(**TINY, features=features)).eval()
    assert encoder.features == features
    batch = encoder.featurize(frame)
    newest = batch["age"][:, -1].tolist()
    assert newest == age_bucket(np.array([3600.0, 21 * 86_400.0]), encoder.config.age_buckets).tolist()
    with torch.no_grad():
        out = encoder(batch)
    assert not torch.allclose(out[0], out[1])

    blind = SequenceEncoder(SequenceConfig(**TINY)).eval()
    assert "hours_since_last_event" not in blind.features
    assert blind.featurize(frame)["age"].eq(0).all()


@pytest.mark.parametrize("table", ["age_emb", "interval_bias", "category_bias"])
def test_a_model_saved_before_a_table_existed_loads_with_its_outputs_unchanged(
    tmp_path: Path, table: str
) -> None:
    """Event ages and pair relations came in later rounds; a model saved without one loads with that table at
    zero, which is exactly the older encoder."""
    frame = order_frame(64, seed=5)
    frame["hours_since_last_event"] = np.linspace(0.5, 500.0, len(frame))
    features = [*SEQUENCE_COLUMNS, "hours_since_last_event"]
    model = build("sequence", {**TINY, "features": features})
    fit(model, frame[:48], frame[48:], TrainConfig(epochs=1, batch_size=16, progress=False, device="cpu"))
    directory = model.save_pretrained(tmp_path / "model")
    weights = load_file(str(directory / "model.safetensors"))
    del weights[f"encoder.{table}.weight"]
    save_file(weights, str(directory / "model.safetensors"))
    with torch.no_grad():
        getattr(model.encoder, table).weight.zero_()
    loaded = ShopModel.from_pretrained(directory)
    np.testing.assert_array_equal(loaded.predict_frame(frame), model.predict_frame(frame))


def test_a_model_saved_before_the_fitted_bucket_tops_clamps_nothing(tmp_path: Path) -> None:
    frame = order_frame(64, seed=5)
    frame["hours_since_last_event"] = np.linspace(0.5, 500.0, len(frame))
    model = build("sequence", {**TINY, "features": [*SEQUENCE_COLUMNS, "hours_since_last_event"]})
    fit(model, frame[:48], frame[48:], TrainConfig(epochs=1, batch_size=16, progress=False, device="cpu"))
    directory = model.save_pretrained(tmp_path / "model")
    weights = load_file(str(directory / "model.safetensors"))
    for name in ("gap", "age", "interval"):
        del weights[f"encoder.top_{name}_bucket"]
    save_file(weights, str(directory / "model.safetensors"))
    loaded = ShopModel.from_pretrained(directory)
    assert int(loaded.encoder.top_age_bucket) == TINY.get("age_buckets", SequenceConfig.age_buckets) - 1
    old = frame.assign(hours_since_last_event=24.0 * 365)  # older than anything the model was fitted on
    assert not np.array_equal(loaded.predict_frame(old), model.predict_frame(old))


def test_inputs_beyond_the_training_rows_read_as_the_highest_bucket_they_reached() -> None:
    """Fitted on events at most ~3 weeks old and gaps under a day, the encoder clamps a snapshot a year later
    (older events, a longer gap, wider intervals) to the top buckets the training rows reached: their table
    rows were trained, the ones above them never were."""
    train = order_frame(200, seed=2)  # gaps 1 .. 100,000 s
    train["hours_since_last_event"] = np.linspace(1.0, 500.0, len(train))
    encoder = SequenceEncoder(SequenceConfig(**TINY, features=[*SEQUENCE_COLUMNS, "hours_since_last_event"]))
    before = encoder.featurize(train)
    encoder.fit(train)
    tops = {name: int(getattr(encoder, f"top_{name}_bucket")) for name in ("gap", "age", "interval")}
    assert tops["gap"] == int(before["gap"].max()) == gap_bucket(np.array([99_999]), 32)[0]
    assert tops["age"] == int(before["age"].max())
    assert tops["age"] < encoder.config.age_buckets - 1 and tops["gap"] < encoder.config.gap_buckets - 1

    later = train.head(3).copy()
    later["seq_seconds_since_prev"] = [[-1] + [30 * 86_400] * (len(s) - 1) for s in later["seq_event_type"]]
    later["hours_since_last_event"] = 24.0 * 365
    batch = encoder.featurize(later)
    assert int(batch["gap"].max()) == tops["gap"]
    assert batch["age"][batch["mask"]].eq(tops["age"]).all()
    keep = torch.cat([batch["mask"].new_ones(3, 1), batch["mask"]], dim=1)
    with torch.no_grad():
        encoder.interval_bias.weight.copy_(torch.arange(3 * encoder.config.interval_buckets)[:, None].float())
        encoder.category_bias.weight.zero_()
        bias = encoder.relation_bias(batch, keep).view(3, TINY["n_heads"], 1 + TINY["max_len"], -1)
    # The newest event's row of the first user: every earlier key has direction 0, so its bias is the interval.
    earlier_keys = bias[0, 0, -1, 1:][batch["mask"][0]][:-1]
    assert earlier_keys.max() == BIAS_SCALE * tops["interval"]


def test_eval_gives_the_training_mode_outputs_with_the_pair_bias() -> None:
    """The per-pair attention bias goes through every layer as a (B * heads, L, L) mask; PyTorch's eval fast
    path for nn.TransformerEncoderLayer mishandles such a mask (pytorch/pytorch#102333), so eval (no_grad)
    must still give what training mode (without dropout) gives."""
    encoder = SequenceEncoder(SequenceConfig(**TINY))
    with torch.no_grad():
        encoder.interval_bias.weight.normal_()
        encoder.category_bias.weight.normal_()
    batch = encoder.featurize(order_frame(32, seed=6))
    with torch.no_grad():
        training = encoder.train()(batch)
        evaluating = encoder.eval()(batch)
    torch.testing.assert_close(evaluating, training)


def category_frame(n: int, seed: int) -> pd.DataFrame:
    """Each user has one view and, later, one cart among favorites, every event in a category of its own
    (random pipeline ids, so a category embedding learns nothing), except that half the carts are of the
    viewed category: label_purchase = 1 iff the cart's category is the view's."""
    rng = np.random.default_rng(seed)
    sequences, categories, labels = [], [], []
    for _ in range(n):
        length = int(rng.integers(3, 11))
        events = [FAVORITE] * length
        i, j = sorted(rng.choice(length, size=2, replace=False))
        events[i], events[j] = VIEW, CART
        category = rng.integers(1, 2**20, length)
        same = rng.random() < 0.5
        if same:
            category[j] = category[i]
        sequences.append(events)
        categories.append(list(category))
        labels.append(float(same))
    frame = sequence_frame(sequences, seed)
    frame["seq_category"] = categories
    frame["label_purchase"] = labels
    return frame


def test_learns_whether_two_events_share_a_category() -> None:
    """Only the pair bias can tell: no category repeats across users, and counts are the same for all. The
    validation loss stays flat for about 12 epochs before the bias takes off, hence the patience."""
    train, valid, test = category_frame(800, 0), category_frame(200, 1), category_frame(400, 2)
    sequence = build("sequence", TINY)
    config = TrainConfig(epochs=30, batch_size=64, lr=3e-3, patience=15, progress=False, device="cpu")
    fit(sequence, train, valid, config)
    assert roc_auc_score(test["label_purchase"], sequence.predict_frame(test)) > 0.8


def test_reads_the_pipeline_sequence_snapshots() -> None:
    """The columns the feature pipeline writes (and the user_sequence view serves) featurize as they are."""
    sequences = build_user_sequences(generate_events(users=30, days=15, seed=0)).to_pandas()
    encoder = SequenceEncoder(SequenceConfig(**TINY)).eval()
    assert set(encoder.features) <= set(sequence_columns())
    batch = encoder.featurize(sequences)
    assert batch["mask"].sum(dim=1).tolist() == [min(len(s), 12) for s in sequences["seq_event_type"]]
    with torch.no_grad():
        assert torch.isfinite(encoder(batch)).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_trains_on_cuda_with_bf16_autocast_and_reloads_on_cpu(tmp_path: Path) -> None:
    frame = order_frame(256, seed=4)
    model = build("sequence", TINY)
    result = fit(model, frame[:192], frame[192:], TrainConfig(epochs=2, progress=False, device="cuda"))
    assert result.device.startswith("cuda")
    on_gpu = model.predict_frame(frame)
    loaded = ShopModel.from_pretrained(model.save_pretrained(tmp_path / "model"), device="cpu")
    np.testing.assert_allclose(loaded.predict_frame(frame), on_gpu, atol=1e-3)


@pytest.mark.slow
def test_trains_on_the_feature_service_and_scores_online(tmp_path: Path, monkeypatch) -> None:
    """jobs.train through Feast's purchase_seq_v1 (point-in-time list features), register, promote, then
    score through the online store, a cold-start user included. Then `shopscore train` concatenates mlp and
    sequence on the same service: the mlp part reads only its scalar fields, each part gets its own options."""
    import json

    from click.testing import CliRunner

    from registry import flow as jobs
    from registry.cli import main
    from registry.model_registry.store import ModelRegistry
    from registry.scoring import Scorer
    from registry.settings import Settings

    settings = Settings.from_env(home=tmp_path)
    settings = settings.with_(database_url=f"sqlite:///{tmp_path / 'registry.db'}", feast_profile="")
    jobs.generate(settings, users=150, days=40, seed=11)
    jobs.build_features(settings)
    jobs.apply_features(settings)
    jobs.materialize_features(settings)
    spec = jobs.TrainSpec(
        model_name="seq",
        encoder="sequence",
        feature_service="purchase_seq_v1",
        encoder_config={"d_model": 16, "n_heads": 2, "n_layers": 1},
        train=TrainConfig(epochs=1, progress=False),
    )
    registry = ModelRegistry.open(settings=settings, upgrade=True, role="promoter")
    version = jobs.train(settings, spec)
    registry.set_alias("seq", "production", version.version, reason="test", actor="test")
    scores = Scorer(settings).score_many([1, 2, 10**9], model="seq")
    assert all(0.0 < s.probability < 1.0 for s in scores)
    assert [s.cold_start for s in scores] == [False, False, True]

    monkeypatch.setenv("SHOPSCORE_HOME", str(tmp_path))
    monkeypatch.setenv("SHOPSCORE_DATABASE_URL", settings.database_url)
    options = {"sequence": {"d_model": 16, "n_heads": 2, "n_layers": 1}, "mlp": {"hidden": [8]}}
    args = ["train", "--model", "both", "--encoder", "mlp", "--encoder", "sequence"]
    args += ["--feature-service", "purchase_seq_v1", "--epochs", "1", "--json"]
    result = CliRunner().invoke(main, [*args, "--encoder-config", json.dumps(options)])
    assert result.exit_code == 0, result.output
    stored = registry.get_version("both", json.loads(result.stdout)["version"])
    mlp_part, sequence_part = stored.params["encoder_config"]["parts"]
    assert mlp_part["config"]["hidden"] == [8] and sequence_part["config"]["d_model"] == 16
    assert "hours_since_last_event" in mlp_part["config"]["features"]
    assert "seq_event_type" not in mlp_part["config"]["features"]
    registry.set_alias("both", "production", stored.version, reason="test", actor="test")
    assert 0.0 < Scorer(settings).score(1, model="both").probability < 1.0

    bad = CliRunner().invoke(main, [*args, "--encoder-config", '{"mlp": [8]}'])
    # The root group prints a user-fixable error as one "Error: ..." line and exits 1 (a SystemExit).
    assert bad.exit_code != 0 and "encoder_config must map encoder names" in bad.output + str(bad.exception)
