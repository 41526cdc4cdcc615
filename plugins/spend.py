"""Built-in `spend` head: how much the user spends within H days of the cutoff (non-negative regression).

Most users spend nothing and a few spend a lot, so squared error on raw amounts is dominated by the few.
The head predicts the log of the expected spend and trains with the Poisson deviance (a Tweedie loss with
power 1), whose minimiser is the conditional mean: predictions are `exp(output)`, never negative, and
their sum over users matches the total spend. The bias starts at log(mean training spend) so the first
epochs do not spend their time finding the scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from registry.plugin_api import AMOUNT, REGRESSION, Answer, Head, LabelWindow, hookimpl

# exp(20) is ~5e8: far above any basket, and it keeps exp() finite in bf16/float32.
MAX_LOG_SPEND = 20.0


@dataclass
class SpendConfig:
    horizon_days: int = 7
    mean_spend: float = 1.0  # mean training label; set from the data by `config_from_data`


class SpendHead(Head):
    name = "spend"
    config_class = SpendConfig
    label = "label_spend"
    answer = Answer("expected_spend", AMOUNT, "Expected amount spent within the model's horizon.")
    evaluation = REGRESSION

    def __init__(self, config: SpendConfig, input_dim: int) -> None:
        super().__init__(config, input_dim)
        if config.mean_spend <= 0:
            raise ValueError(f"spend head: mean_spend must be > 0, not {config.mean_spend}")
        self.linear = nn.Linear(input_dim, 1)
        with torch.no_grad():
            self.linear.bias.fill_(math.log(config.mean_spend))

    @classmethod
    def config_from_data(cls, config: dict[str, Any], train: pd.DataFrame) -> dict[str, Any]:
        mean = float(train["label_spend"].mean()) if len(train) else 0.0
        return {"mean_spend": max(mean, 1e-3), **config}

    @classmethod
    def compute_label(cls, window: LabelWindow) -> np.ndarray:
        """The value (price x quantity) of the user's purchases in the window; 0 without any."""
        return window.per_user(window.purchases().groupby("user_id")["value"].sum(), missing=0.0)

    def forward(
        self, h: torch.Tensor, target: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        log_mean = self.linear(h).squeeze(-1).float().clamp(max=MAX_LOG_SPEND)  # (B,)
        loss = None
        if target is not None:
            loss = F.poisson_nll_loss(log_mean, target.float(), log_input=True, full=False)
        return log_mean, loss

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.float().exp()  # expected spend, >= 0


@hookimpl
def register_heads(register) -> None:
    register(SpendHead)
