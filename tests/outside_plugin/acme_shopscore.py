"""An outside team's shopscore plugin: one encoder and one head, found through the `shopscore` entry point.

- `bag`: a single linear layer over log1p of the (non-negative) aggregate features, missing values as 0.
- `high_spender`: will the user spend at least `min_spend` within H days (binary), from `label_spend`,
  trained with focal loss (rare positives, many easy negatives).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from registry import Encoder, Head, hookimpl
from registry.metrics import binary_metrics


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


@dataclass
class HighSpenderConfig:
    horizon_days: int = 7
    min_spend: float = 100.0
    gamma: float = 2.0  # focal loss focus; 0 is plain BCE


class HighSpenderHead(Head):
    name = "high_spender"
    config_class = HighSpenderConfig

    def __init__(self, config: HighSpenderConfig, input_dim: int) -> None:
        super().__init__(config, input_dim)
        self.linear = nn.Linear(input_dim, 1)

    @property
    def label(self) -> str:
        return "label_spend"

    @property
    def horizon_days(self) -> int:
        return self.config.horizon_days

    def target(self, frame: pd.DataFrame) -> torch.Tensor:
        return torch.as_tensor((frame[self.label].to_numpy() >= self.config.min_spend).astype("float32"))

    def forward(self, h: torch.Tensor, target: torch.Tensor | None = None):
        logits = self.linear(h).squeeze(-1).float()  # (B,)
        if target is None:
            return logits, None
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        p_true = torch.exp(-bce)
        return logits, ((1 - p_true) ** self.config.gamma * bce).mean()

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(outputs.float())

    def metrics(self, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
        return binary_metrics(np.asarray(y_true, dtype="float64") >= self.config.min_spend, y_pred)


@hookimpl
def register_encoders(register) -> None:
    register(BagEncoder)


@hookimpl
def register_heads(register) -> None:
    register(HighSpenderHead)
