"""The two kinds of model part a plugin can contribute: encoders and heads.

A model is one encoder followed by one head. Each part is an `nn.Module` built from a config dataclass,
so it can be saved as JSON + safetensors and rebuilt without pickle.

Data contract (B = batch size, D = encoder width):
- `Encoder.featurize(frame)` turns a pandas frame of feature columns into a dict of tensors (CPU),
- `Encoder.forward(batch)` turns that dict into a `(B, D)` representation,
- `Head.forward(h, target)` turns `(B, D)` into `(B,)` logits (and a loss when given a target),
- `Head.predict(logits)` turns logits into the user-facing prediction (e.g. a probability).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn


class Encoder(nn.Module):
    """Base class for encoders. Subclasses set `name` and `config_class` and implement the methods."""

    name: ClassVar[str]
    config_class: ClassVar[type]

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config

    @property
    def features(self) -> list[str]:
        """Feature names (Feast field names) this encoder reads from the feature frame."""
        raise NotImplementedError

    @property
    def output_dim(self) -> int:
        raise NotImplementedError

    def fit(self, frame: pd.DataFrame) -> None:
        """Fit data-dependent state (e.g. normalisation statistics) on training rows. Default: nothing."""

    def featurize(self, frame: pd.DataFrame) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:  # (B, D)
        raise NotImplementedError


class Head(nn.Module):
    """Base class for prediction heads."""

    name: ClassVar[str]
    config_class: ClassVar[type]

    def __init__(self, config: Any, input_dim: int) -> None:
        super().__init__()
        self.config = config
        self.input_dim = input_dim

    @property
    def label(self) -> str:
        """Name of the label column this head learns (see registry.features.labels)."""
        raise NotImplementedError

    @property
    def horizon_days(self) -> int:
        raise NotImplementedError

    def forward(
        self, h: torch.Tensor, target: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, D) -> ((B,) raw outputs, loss or None)."""
        raise NotImplementedError

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def metrics(self, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
        raise NotImplementedError


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_from_dict(config_class: type, values: dict[str, Any]) -> Any:
    """Rebuild a config dataclass, refusing keys it does not know (a renamed field must not pass silently)."""
    known = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{config_class.__name__} has no field(s) {unknown}; known fields: {sorted(known)}")
    return config_class(**values)
