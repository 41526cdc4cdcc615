"""Built-in `sequence` encoder: a small Transformer over the user's last N events (bidirectional attention,
as in BERT4Rec; SASRec's is causal).

It reads the `user_sequence` view's columns (`SEQUENCE_VIEW` of the feature contract that
registry.plugin_api re-exports, served by the `purchase_seq_v1` FeatureService): `seq_event_type`,
`seq_category`, `seq_price_bucket` and `seq_seconds_since_prev`, each a list of the last 50
(`SEQUENCE_LENGTH`) events, oldest first.

Each event becomes the sum of five embeddings plus a learned position:
- event type id (the contract's ids, `event_type_id`: view=1 ... search=6; 0 is padding),
- category id: the contract's hashed id (1 .. CATEGORY_BUCKETS-1 = 2**20-1) folded into a table of
  `category_buckets` rows (`1 + (id - 1) % (category_buckets - 1)`, 0 stays "none"), so the table stays
  small and needs no vocabulary file,
- price bucket (the contract's log2 buckets, 0 = no price),
- time gap to the previous event, bucketised on log2(1 + seconds) (bucket 1 = "no previous event"),
- the event's age at the features' time, bucketised on log2(1 + minutes) (bucket 0 = unknown). The sequence
  alone only has gaps between events; the age also needs when the newest event happened, which a field
  served beside it gives (`AGE_ANCHORS`: `hours_since_last_event` of user_activity in purchase_seq_v1,
  `days_since_last_event` of the request-time lifetime view in purchase_lifetime_seq_v1). Each event's age
  is that anchor plus the gaps after it, so a search->cart an hour ago reads apart from one weeks ago. A
  FeatureService without an anchor leaves every age unknown; models saved before ages existed load with a
  zero age table, which leaves their outputs as they were.

Attention also sees how each pair of events relates (`relation_bias`, after TiSASRec): per head, a learned
bias for the time between them and the direction, plus one for "same category". Content and position alone
could not tell "a search, then a cart of that category minutes later" from the same events in another order.

Sequences are right-aligned (the newest event is always at the last position), so a position embedding
means "k events ago" for every user. A learned summary token is put in front of every sequence: it is
never masked, so a user with no events (all padding, or a null from Feast when the view's TTL expired)
still gets a finite representation instead of the NaN a fully masked softmax gives. After `n_layers`
pre-norm Transformer blocks, a learned attention pooling (one query vector, padding masked) turns the
tokens into one `(B, d_model)` vector.

Its one data-dependent state: `fit` records the highest gap, age and interval bucket the training rows reach,
and later inputs are clamped to them. A snapshot after the training cutoffs can hold older events and longer
gaps than any training row (CDNOW at T = 1997-09-30: every customer's first orders are over 182 days old, a
bucket no training cutoff reaches), and the table rows of buckets never trained still hold their random
init; clamped, an older event reads as the oldest seen in training. The tops are buffers, saved with the
weights: the model saves as config.json + model.safetensors like every shopscore model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from registry.plugin_api import (
    PRICE_BUCKETS,
    PURCHASE_SEQ_SERVICE,
    SEQ_CATEGORY,
    SEQ_EVENT_TYPE,
    SEQ_PRICE_BUCKET,
    SEQ_SECONDS_SINCE_PREV,
    SEQUENCE_LENGTH,
    SEQUENCE_VIEW,
    Encoder,
    hookimpl,
)

EVENT_TYPE_COLUMN = SEQ_EVENT_TYPE
CATEGORY_COLUMN = SEQ_CATEGORY
PRICE_COLUMN = SEQ_PRICE_BUCKET
GAP_COLUMN = SEQ_SECONDS_SINCE_PREV
SEQUENCE_COLUMNS = (EVENT_TYPE_COLUMN, CATEGORY_COLUMN, PRICE_COLUMN, GAP_COLUMN)
# Fields that tell how long before the features' time the newest event happened, with their unit in
# seconds; the first one a FeatureService serves anchors the events' ages.
AGE_ANCHORS = {"days_since_last_event": 86_400.0, "hours_since_last_event": 3_600.0}
# The pair bias is its tables' values times this. Adam moves every weight by about the learning rate per step,
# so at lr 1e-3 an unscaled bias needs thousands of steps to reach the few units that focus attention; scaled,
# it gets there within the first epochs (bench/experiments/sequence_probe.py's shop, the planted pattern as
# the label: validation PR-AUC 0.92 after 5 epochs, against 0.69 unscaled).
BIAS_SCALE = 8.0
# `fit` reads the training frame in chunks of this many rows, so memory stays bounded on large frames.
FIT_CHUNK_ROWS = 65_536


@dataclass
class SequenceConfig:
    # Feature names the FeatureService serves (registry.flow.TrainSpec passes them); only the four sequence
    # columns are read, and they must be among them. None: read the sequence columns.
    features: list[str] | None = None
    max_len: int = SEQUENCE_LENGTH  # events kept per user (the newest); the feature store holds this many
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    dropout: float = 0.1
    event_types: int = 8  # embedding rows for event type ids (contract: 0 pad, 1..6)
    category_buckets: int = 4096  # rows of the hashed category table (the contract's ids are folded into it)
    price_buckets: int = PRICE_BUCKETS  # the contract's price buckets
    gap_buckets: int = 32  # 0 pad, 1 no previous event, 2.. log2(1 + seconds) buckets
    age_buckets: int = 20  # 0 pad or unknown, 1.. log2(1 + minutes) buckets (bucket 17: ~ 90 days)
    # Attention bias per pair of events (see `relation_bias`): log2(1 + seconds) buckets of the time between
    # them (bucket 23: ~ 97 days and more).
    interval_buckets: int = 24


def _as_int_list(value: object) -> np.ndarray:
    """One cell of a list column (list, ndarray, None or NaN from a Feast miss) as an int64 array."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return np.zeros(0, dtype="int64")
    return np.asarray(value, dtype="int64").reshape(-1)


def right_aligned(cells: Sequence[np.ndarray], max_len: int) -> np.ndarray:
    """Pack variable-length arrays into `(B, max_len)`, keeping the newest `max_len` and padding on the left
    with 0, so the last column is every row's newest event."""
    cells = [c[-max_len:] for c in cells]
    lengths = np.fromiter((len(c) for c in cells), dtype="int64", count=len(cells))
    out = np.zeros((len(cells), max_len), dtype="int64")
    total = int(lengths.sum())
    if total:
        rows = np.repeat(np.arange(len(cells)), lengths)
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
        cols = max_len - np.repeat(lengths, lengths) + (np.arange(total) - starts)
        out[rows, cols] = np.concatenate(cells)
    return out


def age_bucket(seconds: np.ndarray, age_buckets: int) -> np.ndarray:
    """Age in seconds (NaN: unknown) -> bucket: 0 for unknown, else 1 + floor(log2(1 + minutes)), capped at
    age_buckets - 1."""
    seconds = np.asarray(seconds, dtype="float64")
    known = np.isfinite(seconds)
    minutes = np.where(known, np.maximum(seconds, 0.0), 0.0) / 60.0
    return np.where(known, np.minimum(1 + np.floor(np.log2(1.0 + minutes)), age_buckets - 1), 0).astype(
        "int64"
    )


def event_ages(gaps: np.ndarray, newest_age: np.ndarray) -> np.ndarray:
    """Right-aligned gaps `(B, T)` (seconds since the previous event; padding and "no previous event" count
    as 0) and the newest event's age `(B,)` -> every event's age `(B, T)`: the newest age plus the gaps of
    the events after it."""
    later = np.cumsum(gaps[:, ::-1], axis=1)[:, ::-1] - gaps  # sum of the gaps after each position
    return newest_age[:, None] + later


def gap_bucket(seconds: np.ndarray, gap_buckets: int) -> np.ndarray:
    """Seconds since the previous event -> bucket: 1 for "no previous event" (negative), else
    2 + floor(log2(1 + seconds)), capped at gap_buckets - 1."""
    seconds = np.asarray(seconds, dtype="float64")
    log = np.floor(np.log2(1.0 + np.maximum(seconds, 0.0)))
    return np.where(seconds < 0, 1, np.minimum(2 + log, gap_buckets - 1)).astype("int64")


class BiasedEncoderLayer(nn.TransformerEncoderLayer):
    """A pre-norm `nn.TransformerEncoderLayer` that takes a per-sample additive attention mask
    `(B * n_heads, L, L)`: its forward always runs the documented path. The built-in layer's eval fast path
    mishandles such a mask (pytorch/pytorch#102333: eval outputs differed from training mode by up to 0.6
    here). Same submodules, so saved weights load unchanged. Padding goes into that mask as -inf, so a
    separate padding mask is refused rather than ignored."""

    def forward(
        self,
        src: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        src_key_padding_mask: torch.Tensor | None = None,
        is_causal: bool = False,
    ) -> torch.Tensor:
        if src_key_padding_mask is not None or is_causal:
            raise ValueError("BiasedEncoderLayer takes padding and causality inside src_mask only")
        h = self.norm1(src)
        x = src + self.dropout1(self.self_attn(h, h, h, attn_mask=src_mask, need_weights=False)[0])
        h = self.norm2(x)
        return x + self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(h)))))


class SequenceEncoder(Encoder):
    name = "sequence"
    config_class = SequenceConfig

    # Buffers (registered in __init__ from _table_tops): declared so that they are typed as tensors.
    top_gap_bucket: torch.Tensor
    top_age_bucket: torch.Tensor
    top_interval_bucket: torch.Tensor

    def __init__(self, config: SequenceConfig) -> None:
        super().__init__(config)
        if config.features is not None:
            missing = [c for c in SEQUENCE_COLUMNS if c not in config.features]
            if missing:
                raise ValueError(
                    f"sequence encoder reads {list(SEQUENCE_COLUMNS)}, but the configured features lack "
                    f"{missing}; train it on a FeatureService that serves the {SEQUENCE_VIEW} view "
                    f"(e.g. --feature-service {PURCHASE_SEQ_SERVICE})"
                )
        if config.d_model % config.n_heads:
            raise ValueError(
                f"sequence encoder: d_model={config.d_model} is not divisible by n_heads={config.n_heads}; "
                f"pick n_heads that divides d_model"
            )
        if (
            config.max_len < 1
            or config.category_buckets < 2
            or config.gap_buckets < 3
            or config.age_buckets < 2
        ):
            raise ValueError(
                "sequence encoder needs max_len >= 1, category_buckets >= 2, gap_buckets >= 3 and "
                f"age_buckets >= 2, got {config.max_len}, {config.category_buckets}, {config.gap_buckets}, "
                f"{config.age_buckets}"
            )
        d = config.d_model
        self.event_emb = nn.Embedding(config.event_types, d, padding_idx=0)
        self.category_emb = nn.Embedding(config.category_buckets, d, padding_idx=0)
        self.price_emb = nn.Embedding(config.price_buckets, d, padding_idx=0)
        self.gap_emb = nn.Embedding(config.gap_buckets, d, padding_idx=0)
        self.age_emb = nn.Embedding(config.age_buckets, d, padding_idx=0)
        self.pos_emb = nn.Embedding(config.max_len + 1, d)  # position 0 is the summary token
        self.summary = nn.Parameter(torch.zeros(d))
        self.drop = nn.Dropout(config.dropout)
        layer = BiasedEncoderLayer(
            d, config.n_heads, 4 * d, config.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(
            layer, config.n_layers, norm=nn.LayerNorm(d), enable_nested_tensor=False
        )
        self.pool_query = nn.Linear(d, 1)  # learned attention pooling: one score per token
        nn.init.normal_(self.summary, std=0.02)
        # The pair bias (`relation_bias`), two tables of one value per head, added: by (direction, interval
        # bucket) and by (direction, same category or not). Added rather than one table per combination, so
        # what a shared category is worth is learned from every pair, whatever the time between. The time
        # table starts as ALiBi's recency prior (Press et al., ICLR 2022), on time instead of positions: head
        # h subtracts 2**-h per interval bucket, so head 0 looks within the session and the last head
        # everywhere. The category table starts at zero.
        self.interval_bias = nn.Embedding(3 * config.interval_buckets, config.n_heads)
        self.category_bias = nn.Embedding(3 * 2, config.n_heads)
        with torch.no_grad():  # created last: the other weights draw as before
            slopes = 2.0 ** -torch.arange(config.n_heads, dtype=torch.float32)
            buckets = torch.arange(config.interval_buckets, dtype=torch.float32).repeat(3)
            self.interval_bias.weight.copy_(-buckets[:, None] * slopes[None, :] / BIAS_SCALE)
            self.category_bias.weight.zero_()
        # The highest bucket of each input that the training rows reached (`fit`); until fitted, the table's
        # last row, so nothing is clamped.
        for name, top in self._table_tops().items():
            self.register_buffer(f"top_{name}_bucket", torch.tensor(top))

    @classmethod
    def select_features(cls, fields: dict[str, object]) -> list[str]:
        """The sequence columns and the first age anchor the service serves."""
        anchors = [name for name in AGE_ANCHORS if name in fields][:1]
        return [name for name in fields if name in SEQUENCE_COLUMNS] + anchors

    @property
    def age_anchor(self) -> str | None:
        """The configured feature that anchors the events' ages (None: ages unknown)."""
        features = self.config.features or []
        return next((name for name in AGE_ANCHORS if name in features), None)

    @property
    def features(self) -> list[str]:
        anchor = self.age_anchor
        return list(SEQUENCE_COLUMNS) + ([anchor] if anchor else [])

    @property
    def output_dim(self) -> int:
        return self.config.d_model

    def fit(self, frame: pd.DataFrame) -> None:
        """Record the highest gap, age and interval bucket among the training rows' events (see the module
        docstring): inputs beyond them are clamped to them from now on."""
        for name, top in self._table_tops().items():  # unclamped while reading the training rows
            getattr(self, f"top_{name}_bucket").fill_(top)
        tops = {"gap": 1, "age": 0, "interval": 0}  # gap bucket 1, "no previous event", always exists
        for start in range(0, len(frame), FIT_CHUNK_ROWS):
            batch = self.featurize(frame.iloc[start : start + FIT_CHUNK_ROWS])
            if not batch["mask"].any():
                continue
            tops["gap"] = max(tops["gap"], int(batch["gap"].max()))
            tops["age"] = max(tops["age"], int(batch["age"].max()))
            # The longest interval between two of a row's events: from its oldest to its newest.
            span = batch["before_newest"].masked_fill(~batch["mask"], 0.0).max()
            tops["interval"] = max(tops["interval"], int(self._interval_bucket(span)))
        for name, top in tops.items():
            getattr(self, f"top_{name}_bucket").fill_(top)

    def _table_tops(self) -> dict[str, int]:
        """The last row of each bucketed input's table: the tops before `fit`, clamping nothing."""
        c = self.config
        return {"gap": c.gap_buckets - 1, "age": c.age_buckets - 1, "interval": c.interval_buckets - 1}

    def _interval_bucket(self, seconds: torch.Tensor) -> torch.Tensor:
        """Seconds between two events -> log2(1 + seconds) bucket, capped at the table and the fitted top."""
        bucket = torch.log2(1.0 + seconds.abs()).long().clamp(max=self.config.interval_buckets - 1)
        return torch.minimum(bucket, self.top_interval_bucket)

    def featurize(self, frame: pd.DataFrame) -> dict[str, torch.Tensor]:
        missing = [c for c in SEQUENCE_COLUMNS if c not in frame.columns]
        if missing:
            raise KeyError(
                f"sequence encoder: feature frame lacks column(s) {missing}; fetch the {SEQUENCE_VIEW} view "
                f"(FeatureService {PURCHASE_SEQ_SERVICE}) or build it with `shopscore features build`"
            )
        c = self.config
        cells = {col: [_as_int_list(v) for v in frame[col]] for col in SEQUENCE_COLUMNS}
        lengths = np.array([len(v) for v in cells[EVENT_TYPE_COLUMN]], dtype="int64")
        for col in SEQUENCE_COLUMNS[1:]:
            other = np.array([len(v) for v in cells[col]], dtype="int64")
            bad = np.flatnonzero(other != lengths)
            if len(bad):
                raise ValueError(
                    f"sequence encoder: row {int(bad[0])} has {other[bad[0]]} values in {col!r} but "
                    f"{lengths[bad[0]]} in {EVENT_TYPE_COLUMN!r}; the sequence columns must come from one "
                    f"{SEQUENCE_VIEW} snapshot (rebuild the features with `shopscore features build`)"
                )
        valid = np.arange(c.max_len)[None, :] >= c.max_len - np.minimum(lengths, c.max_len)[:, None]
        event = right_aligned(cells[EVENT_TYPE_COLUMN], c.max_len).clip(0, c.event_types - 1)
        category_id = right_aligned(cells[CATEGORY_COLUMN], c.max_len)
        category = np.where(category_id > 0, 1 + (category_id - 1) % (c.category_buckets - 1), 0)
        price = right_aligned(cells[PRICE_COLUMN], c.max_len).clip(0, c.price_buckets - 1)
        gap_seconds = right_aligned(cells[GAP_COLUMN], c.max_len)
        gap = np.minimum(gap_bucket(gap_seconds, c.gap_buckets), int(self.top_gap_bucket))
        anchor = self.age_anchor
        if anchor is not None and anchor in frame.columns:
            newest = pd.to_numeric(frame[anchor], errors="coerce").to_numpy("float64") * AGE_ANCHORS[anchor]
        else:
            newest = np.full(len(frame), np.nan)
        gaps = np.where(valid, np.maximum(gap_seconds, 0), 0).astype("float64")
        before_newest = event_ages(gaps, np.zeros(len(frame)))  # seconds before the newest event
        age = age_bucket(newest[:, None] + before_newest, c.age_buckets)
        age = np.where(valid, np.minimum(age, int(self.top_age_bucket)), 0)
        return {
            "event": torch.as_tensor(event),  # (B, T) int64, 0 = padding
            "category": torch.as_tensor(category),  # (B, T)
            "price": torch.as_tensor(price),  # (B, T)
            "gap": torch.as_tensor(np.where(valid, gap, 0)),  # (B, T)
            "age": torch.as_tensor(age),  # (B, T), 0 = padding or unknown
            # (B, T) float32 and int64: for the pairwise attention bias (`relation_bias`); the category is the
            # contract's id, not the folded bucket, so two categories sharing a bucket never read as the same
            "before_newest": torch.as_tensor(before_newest, dtype=torch.float32),
            "category_id": torch.as_tensor(category_id),
            "mask": torch.as_tensor(valid),  # (B, T) bool, True = a real event
        }

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Each event as the sum of its five embeddings, `(B, T, C)`; padding rows are zero."""
        return (
            self.event_emb(batch["event"])
            + self.category_emb(batch["category"])
            + self.price_emb(batch["price"])
            + self.gap_emb(batch["gap"])
            + self.age_emb(batch["age"])
        )

    def relation_bias(self, batch: dict[str, torch.Tensor], keep: torch.Tensor) -> torch.Tensor:
        """Additive attention bias `(B * n_heads, 1 + T, 1 + T)` from how each pair of events relates, as
        TiSASRec (Li et al., WSDM 2020) lets attention see the time between events: per head, a learned value
        for (is the key the earlier, the same or the later event; log2 bucket of the seconds between them)
        plus one for (direction; same category or not). With it one layer finds "a search for this category
        minutes before this cart", which content and position alone left out of reach
        (bench/experiments/sequence_probe.py). Keys that `keep` (B, 1 + T) leaves out, the padding, get -inf;
        the summary token (row and column 0) no bias."""
        mask = batch["mask"]  # (B, T)
        B, T = mask.shape
        seconds = batch["before_newest"]  # (B, T)
        interval = self._interval_bucket(seconds[:, :, None] - seconds[:, None, :])  # (B, T, T)
        order = torch.arange(T, device=mask.device)
        # (1, T, T): 0 where the key j is earlier than the query i, 1 on the diagonal, 2 where it is later
        direction = (torch.sign(order[None, :] - order[:, None]) + 1)[None]
        category = batch["category_id"]
        same = (category[:, :, None] == category[:, None, :]) & (category[:, :, None] > 0)  # (B, T, T)
        pairs = self.interval_bias(direction * self.config.interval_buckets + interval) + self.category_bias(
            direction * 2 + same.long()
        )  # (B, T, T, H)
        bias = mask.new_zeros((B, self.config.n_heads, 1 + T, 1 + T), dtype=pairs.dtype)
        bias[:, :, 1:, 1:] = BIAS_SCALE * pairs.permute(0, 3, 1, 2)
        bias = bias.masked_fill(~keep[:, None, None, :], float("-inf"))
        return bias.reshape(B * self.config.n_heads, 1 + T, 1 + T)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = batch["mask"]  # (B, T)
        B, T = mask.shape
        x = self.embed(batch)  # (B, T, C)
        x = torch.cat([self.summary.expand(B, 1, -1), x], dim=1)  # (B, 1 + T, C)
        # Positions of the right-aligned tokens: the newest event is always position max_len.
        pos = torch.arange(self.config.max_len - T, self.config.max_len + 1, device=mask.device)
        pos[0] = 0  # the summary token
        x = self.drop(x + self.pos_emb(pos))  # (B, 1 + T, C)
        keep = torch.cat([mask.new_ones(B, 1), mask], dim=1)  # (B, 1 + T); the summary token is never masked
        h = self.blocks(x, mask=self.relation_bias(batch, keep))  # (B, 1 + T, C); the bias masks padding too
        scores = self.pool_query(h).squeeze(-1).float().masked_fill(~keep, float("-inf"))  # (B, 1 + T)
        weights = F.softmax(scores, dim=-1).to(h.dtype)  # (B, 1 + T)
        return torch.einsum("bt,btc->bc", weights, h)  # (B, C)

    def _load_from_state_dict(
        self, state_dict: dict[str, object], prefix: str, *args: object, **kwargs: object
    ) -> None:
        # Models saved before event ages (or the pair bias) existed lack those tables: zero ones keep their
        # outputs exact. Models saved before the fitted bucket tops clamp nothing, as before.
        for name in ("age_emb", "interval_bias", "category_bias"):
            state_dict.setdefault(f"{prefix}{name}.weight", torch.zeros_like(getattr(self, name).weight))
        for name, top in self._table_tops().items():
            state_dict.setdefault(f"{prefix}top_{name}_bucket", torch.tensor(top))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


@hookimpl
def register_encoders(register) -> None:
    register(SequenceEncoder)
