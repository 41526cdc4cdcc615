"""Built-in `next_category` head: which category will the user buy from first within H days (multiclass).

The class vocabulary is the set of categories bought in the training window, stored in the head's config
(so it is saved in config.json and fixes the output width on load). Only users who do buy carry a label;
the rest are left out of training and evaluation (`Head.labelled` drops null labels). A category the model
never saw has no class: it is ignored by the loss and counts as a miss in the metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from registry.plugin_api import (
    CATEGORIES,
    RANKED_CATEGORIES,
    Answer,
    CategoryProbability,
    Head,
    LabelWindow,
    hookimpl,
    top_k_accuracy,
)

UNKNOWN = -1  # target index of a category outside the vocabulary


@dataclass
class NextCategoryConfig:
    horizon_days: int = 7
    categories: list[str] = field(default_factory=list)  # class vocabulary; set by `config_from_data`
    top_k: int = 3  # reported as top{k}_accuracy next to top1_accuracy; serving answers the top k


class NextCategoryHead(Head):
    name = "next_category"
    config_class = NextCategoryConfig
    label = "label_next_category"
    answer = Answer(
        "top_categories", RANKED_CATEGORIES, "The most likely first categories bought, most likely first."
    )
    evaluation = CATEGORIES

    def __init__(self, config: NextCategoryConfig, input_dim: int) -> None:
        super().__init__(config, input_dim)
        if len(config.categories) < 2:
            raise ValueError(
                f"next_category head needs at least 2 categories, got {config.categories!r}; build it "
                f"through registry.flow.train (which reads them from the training rows) or list them in "
                f"NextCategoryConfig.categories"
            )
        self.index = {c: i for i, c in enumerate(config.categories)}
        self.linear = nn.Linear(input_dim, len(config.categories))

    @classmethod
    def config_from_data(cls, config: dict[str, Any], train: pd.DataFrame) -> dict[str, Any]:
        seen = sorted(train["label_next_category"].dropna().astype(str).unique())
        return {"categories": seen, **config}

    @classmethod
    def compute_label(cls, window: LabelWindow) -> np.ndarray:
        """The category of the user's first purchase in the window that has one; None without any."""
        bought = window.purchases().dropna(subset=["category"])
        return window.per_user(bought.groupby("user_id")["category"].first().astype(str), missing=None)

    def indices(self, labels: np.ndarray) -> np.ndarray:
        return np.array([self.index.get(str(c), UNKNOWN) for c in labels], dtype="int64")

    def target(self, frame: pd.DataFrame) -> torch.Tensor:
        return torch.as_tensor(self.indices(frame[self.label].to_numpy()))  # (B,) class indices

    def forward(
        self, h: torch.Tensor, target: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = self.linear(h).float()  # (B, C)
        loss = None if target is None else F.cross_entropy(logits, target.long(), ignore_index=UNKNOWN)
        return logits, loss

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return torch.softmax(outputs.float(), dim=-1)  # (B, C), columns in config.categories order

    def answers(self, predictions: np.ndarray) -> list[Any]:
        """Per row, the top_k categories with their probabilities, most likely first."""
        k = min(self.config.top_k, predictions.shape[1])
        best = np.argsort(-predictions, axis=1, kind="stable")[:, :k]
        names = self.config.categories
        return [
            tuple(CategoryProbability(names[c], p) for c, p in zip(row, probs.tolist(), strict=True))
            for row, probs in zip(best.tolist(), np.take_along_axis(predictions, best, axis=1), strict=True)
        ]

    def metrics(self, target: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
        """The categories evaluation's metrics, plus top-k accuracy at the configured k."""
        k = self.config.top_k
        return {
            **super().metrics(target, predictions),
            f"top{k}_accuracy": top_k_accuracy(target, predictions, k),
        }


@hookimpl
def register_heads(register) -> None:
    register(NextCategoryHead)
