"""Built-in `purchase` head: will the user purchase within H days of the cutoff (binary)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from registry import Head, hookimpl
from registry.metrics import binary_metrics


@dataclass
class PurchaseConfig:
    horizon_days: int = 7


class PurchaseHead(Head):
    name = "purchase"
    config_class = PurchaseConfig

    def __init__(self, config: PurchaseConfig, input_dim: int) -> None:
        super().__init__(config, input_dim)
        self.linear = nn.Linear(input_dim, 1)

    @property
    def label(self) -> str:
        return "label_purchase"

    @property
    def horizon_days(self) -> int:
        return self.config.horizon_days

    def forward(
        self, h: torch.Tensor, target: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = self.linear(h).squeeze(-1)  # (B,)
        loss = None if target is None else F.binary_cross_entropy_with_logits(logits.float(), target.float())
        return logits, loss

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(outputs.float())

    def metrics(self, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
        return binary_metrics(y_true, y_pred)


@hookimpl
def register_heads(register) -> None:
    register(PurchaseHead)
