"""Built-in `purchase` head: will the user purchase within H days of the cutoff (binary), calibrated.

A network trained with BCE ranks users well but its probabilities drift: overconfident after many epochs,
off by a constant when the training cutoffs' base rate differs from today's. After training, the head fits
Platt scaling (temperature + bias on the logit) on the validation window, so "0.3" means about 30% of such
users buy. It then picks the decision threshold with the best validation F1; both are buffers, saved in
model.safetensors and applied at scoring time. Calibration is monotone, so ROC-AUC and PR-AUC are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from registry.plugin_api import (
    BINARY,
    PROBABILITY,
    Answer,
    Head,
    LabelWindow,
    best_f1_threshold,
    binary_metrics,
    hookimpl,
)

# Buffers added after the first release; a model saved before them loads with the identity calibration.
_CALIBRATION_DEFAULTS = {"log_temperature": 0.0, "calibration_bias": 0.0, "threshold": 0.5}


@dataclass
class PurchaseConfig:
    horizon_days: int = 7
    calibrate: bool = True  # fit temperature + bias on the validation window after training


class PurchaseHead(Head):
    name = "purchase"
    config_class = PurchaseConfig
    label = "label_purchase"
    answer = Answer("probability", PROBABILITY, "Probability of a purchase within the model's horizon.")
    evaluation = BINARY

    # Buffers (registered in __init__ from _CALIBRATION_DEFAULTS): declared so that they are typed as tensors.
    log_temperature: torch.Tensor
    calibration_bias: torch.Tensor
    threshold: torch.Tensor

    def __init__(self, config: PurchaseConfig, input_dim: int) -> None:
        super().__init__(config, input_dim)
        self.linear = nn.Linear(input_dim, 1)
        for buffer, value in _CALIBRATION_DEFAULTS.items():
            self.register_buffer(buffer, torch.tensor(value))

    @classmethod
    def compute_label(cls, window: LabelWindow) -> np.ndarray:
        """1 if the user buys anything in the window, else 0."""
        return np.isin(window.users, window.purchases()["user_id"].unique()).astype("int64")

    def forward(
        self, h: torch.Tensor, target: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = self.linear(h).squeeze(-1)  # (B,) uncalibrated: the loss trains the network, not calibration
        loss = None if target is None else F.binary_cross_entropy_with_logits(logits.float(), target.float())
        return logits, loss

    def calibrated_logits(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.float() / self.log_temperature.exp() + self.calibration_bias

    def calibrate(self, outputs: torch.Tensor, target: torch.Tensor) -> None:
        """Fit temperature and bias by minimising validation log loss, then the best-F1 threshold."""
        target = target.float()
        if self.config.calibrate and 0 < float(target.sum()) < len(target):  # one class: nothing to fit
            logits = outputs.detach().double().cpu()
            y = target.double().cpu()
            log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
            bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
            optimizer = torch.optim.LBFGS([log_t, bias], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

            def closure() -> torch.Tensor:
                optimizer.zero_grad()
                loss = F.binary_cross_entropy_with_logits(logits / log_t.exp() + bias, y)
                loss.backward()
                return loss

            with torch.enable_grad():
                optimizer.step(closure)
            self.log_temperature.fill_(float(log_t.detach()))
            self.calibration_bias.fill_(float(bias.detach()))
        probabilities = self.predict(outputs).cpu().numpy()
        self.threshold.fill_(best_f1_threshold(target.cpu().numpy(), probabilities))

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.calibrated_logits(outputs))

    def metrics(self, target: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
        return binary_metrics(target, predictions, threshold=float(self.threshold))

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        for buffer, value in _CALIBRATION_DEFAULTS.items():
            state_dict.setdefault(prefix + buffer, torch.tensor(value))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


@hookimpl
def register_heads(register) -> None:
    register(PurchaseHead)
