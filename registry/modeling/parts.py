"""The two kinds of model part a plugin can contribute: encoders and heads.

A model is one encoder followed by one head. Each part is an `nn.Module` built from a config dataclass,
so it can be saved as JSON + safetensors and rebuilt without pickle.

Data contract (B = batch size, D = encoder width), checked where core calls the parts (registry.modeling.shop_model):
- `Head.compute_label(window)` computes the head's label from the events after each cutoff (registry.modeling.tasks),
- `Encoder.featurize(frame)` turns a pandas frame of feature columns into a dict of tensors (CPU),
- `Encoder.forward(batch)` turns that dict into a `(B, D)` representation,
- `Head.labelled(frame)` keeps the rows the head can learn from (e.g. drops rows whose label is null),
- `Head.target(frame)` turns the label column into the target tensor its loss expects (float for binary
  and regression heads, class indices for multiclass heads),
- `Head.forward(h, target)` turns `(B, D)` into raw outputs, `(B,)` or `(B, C)` (and a loss when given a
  target),
- `Head.calibrate(outputs, target)` fits post-hoc state (e.g. a temperature) on validation outputs,
- `Head.predict(outputs)` turns raw outputs into the user-facing prediction (a probability, an amount, or
  `(B, C)` class probabilities),
- `Head.answers(predictions)` turns those into one served answer per row, of the type `Head.answer` declares,
- `Head.metrics(target, predictions)` evaluates on the head's own target (default: `Head.evaluation`'s).

One training loop (registry.modeling.training.fit) serves binary, regression and multiclass heads because the head,
not the loop, knows its label, its target tensor and its loss.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn

from registry.modeling.tasks import Answer, Evaluation, LabelWindow


class Encoder(nn.Module):
    """Base class for encoders. Subclasses set `name` and `config_class` and implement the methods."""

    name: ClassVar[str]
    config_class: ClassVar[type]

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config

    @classmethod
    def select_features(cls, fields: dict[str, Any]) -> list[str]:
        """Of a FeatureService's fields (name -> Feast dtype, e.g. `Int64`, `Array(Int64)`), the names this
        encoder can read; registry.flow puts them in the config's `features`. Default: every field.

        Overriding this lets one service feed encoders that read different kinds of field (an MLP reads the
        scalar numbers of a service whose sequence columns a sequence encoder reads), e.g. in a `concat`."""
        return list(fields)

    @property
    def features(self) -> list[str]:
        """Feature names (Feast field names) this encoder reads from the feature frame."""
        raise NotImplementedError

    @property
    def output_dim(self) -> int:
        raise NotImplementedError

    def fit(self, frame: pd.DataFrame) -> None:
        """Fit data-dependent state (e.g. normalisation statistics) on training rows. Default: nothing."""

    def params(self) -> dict[str, Any]:
        """The config as the registry records it in a version's `params`: fields marked
        `metadata={"artifact_only": True}` (large blobs such as a tokenizer, kept in config.json) left out."""
        return {
            f.name: getattr(self.config, f.name)
            for f in dataclasses.fields(self.config)
            if not f.metadata.get("artifact_only")
        }

    def sub_encoders(self) -> list[Encoder]:
        """Encoders this one is built from (e.g. `concat`'s parts). Their plugins are recorded in config.json
        beside this one's, so loading a saved model names every package it needs. Default: none."""
        return []

    def featurize(self, frame: pd.DataFrame) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:  # (B, D)
        raise NotImplementedError


class Head(nn.Module):
    """Base class for prediction heads. A head owns its task: it declares the label it learns
    (`label` + `compute_label`), the answer it serves (`answer`) and how it is evaluated (`evaluation`)."""

    name: ClassVar[str]
    config_class: ClassVar[type]
    # The column of a training frame that holds this head's label (e.g. "label_purchase").
    label: ClassVar[str]
    # What a served score carries for this head (its name and JSON type).
    answer: ClassVar[Answer]
    # How the head is evaluated: metrics, headline metrics, baselines and the promotion metric.
    evaluation: ClassVar[Evaluation]

    def __init__(self, config: Any, input_dim: int) -> None:
        super().__init__()
        self.config = config
        self.input_dim = input_dim

    @classmethod
    def compute_label(cls, window: LabelWindow) -> np.ndarray | pd.Series | list[Any]:
        """The label of each of `window.users` (in order) from the events in `window.events`, all strictly
        after `window.cutoff` and within `window.horizon_days`. NaN / None: no label (the row is left out of
        training and evaluation by `labelled`)."""
        raise NotImplementedError

    @property
    def horizon_days(self) -> int:
        """How many days after the cutoff the label looks; read from the config's `horizon_days` field."""
        try:
            return int(self.config.horizon_days)
        except AttributeError:
            raise NotImplementedError(
                f"head {self.name!r}: give the config a `horizon_days` field or override `horizon_days`"
            ) from None

    @classmethod
    def config_from_data(cls, config: dict[str, Any], train: pd.DataFrame) -> dict[str, Any]:
        """Complete a config dict from the training rows (which carry the `label` column) before the head is
        built (e.g. a class vocabulary, which fixes the output width). Called once per training; default:
        unchanged."""
        return config

    def labelled(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The rows this head can learn from and be evaluated on: default, those with a non-null label."""
        return frame[frame[self.label].notna()]

    def target(self, frame: pd.DataFrame) -> torch.Tensor:
        """The label column as the tensor `forward` expects as `target`: default float32 `(B,)`."""
        return torch.as_tensor(frame[self.label].to_numpy(dtype="float32"))

    def forward(
        self, h: torch.Tensor, target: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, D) -> (raw outputs (B,) or (B, C), loss or None)."""
        raise NotImplementedError

    def calibrate(self, outputs: torch.Tensor, target: torch.Tensor) -> None:
        """Fit post-hoc state on validation outputs after training (stored as buffers). Default: nothing."""

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def answers(self, predictions: np.ndarray) -> list[Any]:
        """One served answer per row of `predict`'s output, of the type `answer` declares. Default: the
        row's number ((B,) predictions)."""
        return predictions.tolist()

    def metrics(self, target: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
        """Metrics of `predictions` (from `predict`) against the head's own target (`target` as numpy).
        Default: the declared evaluation's metrics."""
        return self.evaluation.metrics(target, predictions)


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_from_dict(config_class: type, values: dict[str, Any]) -> Any:
    """Rebuild a config dataclass, refusing keys it does not know (a renamed field must not pass silently)."""
    known = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{config_class.__name__} has no field(s) {unknown}; known fields: {sorted(known)}")
    return config_class(**values)
