"""An outside team's shopscore plugin, found through the `shopscore` entry point. It imports only the public
plugin API (registry.plugin_api), as any team's package must.

- `bag` encoder: one linear layer over log1p of the (non-negative) aggregate features, missing values as 0.
- `churn` head: will the user make no purchase within H days (binary); its own label, answered as
  `churn_probability`.
- `expected_orders` head: how many orders the user places within H days (Poisson regression); its own label
  and its own answer type, a count.
- `check_promotion`: Acme refuses to promote a binary model whose test ROC-AUC is below
  ACME_MIN_TEST_ROC_AUC (default 0.5).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from registry.plugin_api import (
    BINARY,
    PROBABILITY,
    REGRESSION,
    Answer,
    AnswerType,
    Encoder,
    Head,
    LabelWindow,
    hookimpl,
)


@dataclass
class BagConfig:
    features: list[str]
    width: int = 16


class BagEncoder(Encoder):
    name = "bag"
    config_class = BagConfig

    def __init__(self, config: BagConfig) -> None:
        super().__init__(config)
        self.linear = nn.Linear(len(config.features), config.width)

    @property
    def features(self) -> list[str]:
        return list(self.config.features)

    @property
    def output_dim(self) -> int:
        return self.config.width

    def featurize(self, frame: pd.DataFrame) -> dict[str, torch.Tensor]:
        values = frame[self.config.features].to_numpy(dtype="float64", na_value=np.nan)
        return {"x": torch.as_tensor(np.log1p(np.nan_to_num(np.abs(values))), dtype=torch.float32)}

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.relu(self.linear(batch["x"]))  # (B, width)


class BinaryHead(Head):
    """A linear logit and BCE; subclasses say what the label is."""

    evaluation = BINARY

    def __init__(self, config, input_dim: int) -> None:
        super().__init__(config, input_dim)
        self.linear = nn.Linear(input_dim, 1)

    def forward(self, h: torch.Tensor, target: torch.Tensor | None = None):
        logits = self.linear(h).squeeze(-1).float()  # (B,)
        loss = None if target is None else F.binary_cross_entropy_with_logits(logits, target.float())
        return logits, loss

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(outputs.float())


@dataclass
class ChurnConfig:
    horizon_days: int = 7


class ChurnHead(BinaryHead):
    name = "churn"
    config_class = ChurnConfig
    label = "label_churn"
    answer = Answer(
        "churn_probability", PROBABILITY, "Probability that the user buys nothing in the horizon."
    )

    @classmethod
    def compute_label(cls, window: LabelWindow) -> np.ndarray:
        return (~np.isin(window.users, window.purchases()["user_id"].unique())).astype("float64")


COUNT = AnswerType("count", "an expected number of events, >= 0", minimum=0.0)


@dataclass
class OrdersConfig:
    horizon_days: int = 7


class ExpectedOrdersHead(Head):
    name = "expected_orders"
    config_class = OrdersConfig
    label = "label_orders"
    answer = Answer("expected_orders", COUNT, "Expected number of orders within the horizon.")
    evaluation = REGRESSION

    def __init__(self, config: OrdersConfig, input_dim: int) -> None:
        super().__init__(config, input_dim)
        self.linear = nn.Linear(input_dim, 1)

    @classmethod
    def compute_label(cls, window: LabelWindow) -> np.ndarray:
        return window.per_user(window.purchases().groupby("user_id").size(), missing=0).astype("float64")

    def forward(self, h: torch.Tensor, target: torch.Tensor | None = None):
        log_rate = self.linear(h).squeeze(-1).float().clamp(max=10.0)  # (B,)
        loss = None if target is None else F.poisson_nll_loss(log_rate, target.float(), log_input=True)
        return log_rate, loss

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.float().exp()


@hookimpl
def register_encoders(register) -> None:
    register(BagEncoder)


@hookimpl
def register_heads(register) -> None:
    register(ChurnHead)
    register(ExpectedOrdersHead)


@hookimpl
def check_promotion(candidate, current):
    floor = float(os.environ.get("ACME_MIN_TEST_ROC_AUC", "0.5"))
    auc = candidate.metrics.get("test_roc_auc")
    if auc is not None and auc < floor:
        return f"test ROC-AUC {auc:.3f} is below Acme's floor of {floor}"
    return None
