"""Built-in `mlp` encoder: a small MLP over the aggregate user features.

Counts, spend and hours are heavy-tailed, so each value is passed through sign(x)*log1p(|x|) and then
standardised with statistics fitted on the training rows; the statistics are buffers, so they are saved
in model.safetensors with the weights. Missing values (a user with no recent snapshot, "never purchased")
become 0 after standardisation plus a 0/1 missing indicator per feature, so the model can tell them apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from feast.types import Bool, Float32, Float64, Int32, Int64
from torch import nn

from registry.plugin_api import Encoder, hookimpl

NUMERIC_TYPES = (Bool, Float32, Float64, Int32, Int64)


@dataclass
class MLPConfig:
    features: list[str]
    hidden: list[int] = field(default_factory=lambda: [64, 32])
    dropout: float = 0.1


class MLPEncoder(Encoder):
    name = "mlp"
    config_class = MLPConfig

    # Buffers (registered in __init__): declared so that they are typed as tensors.
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, config: MLPConfig) -> None:
        super().__init__(config)
        n = len(config.features)
        if n == 0:
            raise ValueError("mlp encoder needs at least one feature in MLPConfig.features")
        self.register_buffer("mean", torch.zeros(n))
        self.register_buffer("std", torch.ones(n))
        layers: list[nn.Module] = []
        width = 2 * n  # standardised values + missing indicators
        for hidden in config.hidden:
            layers += [nn.Linear(width, hidden), nn.GELU(), nn.Dropout(config.dropout)]
            width = hidden
        self.net = nn.Sequential(*layers)
        self._output_dim = width

    @classmethod
    def select_features(cls, fields: dict[str, object]) -> list[str]:
        """The scalar numeric fields: lists and strings are for the sequence and text encoders."""
        numeric = [name for name, dtype in fields.items() if dtype in NUMERIC_TYPES]
        if not numeric:
            raise ValueError(
                f"mlp encoder reads scalar numeric features, and the feature service has none "
                f"(fields: {sorted(fields)}); train it on a service with aggregates, e.g. purchase_v1"
            )
        return numeric

    @property
    def features(self) -> list[str]:
        return list(self.config.features)

    @property
    def output_dim(self) -> int:
        return self._output_dim

    def _raw(self, frame: pd.DataFrame) -> np.ndarray:
        missing = [f for f in self.config.features if f not in frame.columns]
        if missing:
            raise KeyError(f"mlp encoder: feature frame lacks column(s) {missing}")
        values = frame[self.config.features].to_numpy(dtype="float64", na_value=np.nan)
        return np.sign(values) * np.log1p(np.abs(values))

    def fit(self, frame: pd.DataFrame) -> None:
        raw = self._raw(frame)
        mean = np.nan_to_num(np.nanmean(raw, axis=0), nan=0.0)
        std = np.nan_to_num(np.nanstd(raw, axis=0), nan=1.0)
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.std.copy_(torch.as_tensor(np.where(std > 1e-6, std, 1.0), dtype=torch.float32))

    def featurize(self, frame: pd.DataFrame) -> dict[str, torch.Tensor]:
        return {"x": torch.as_tensor(self._raw(frame), dtype=torch.float32)}

    def featurize_values(self, names: list[str], values: np.ndarray) -> dict[str, torch.Tensor]:
        """`featurize` for a (B, F) float array with columns `names` (NaN = missing), without pandas."""
        if names != self.config.features:
            missing = [f for f in self.config.features if f not in names]
            if missing:
                raise KeyError(f"mlp encoder: feature values lack column(s) {missing}")
            values = values[:, [names.index(f) for f in self.config.features]]
        raw = np.sign(values) * np.log1p(np.abs(values))
        return {"x": torch.from_numpy(raw.astype(np.float32))}

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = batch["x"]  # (B, F), NaN where missing
        missing = torch.isnan(x)
        z = torch.where(missing, torch.zeros_like(x), (x - self.mean) / self.std)
        return self.net(torch.cat([z, missing.to(z.dtype)], dim=-1))  # (B, D)


@hookimpl
def register_encoders(register) -> None:
    register(MLPEncoder)
