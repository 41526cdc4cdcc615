"""Built-in `concat` encoder: several encoders side by side, their representations concatenated.

Its config lists the parts as `{"name": <encoder name>, "config": <that encoder's config dict>}`; each part
is built through the plugin host, so a team's encoder can be combined with a built-in one without either
knowing the other. Output width is the sum of the parts' widths. The parts are submodules, so their
weights and fitted buffers land in model.safetensors under `encoder.parts.<i>.` and a saved concat model
loads back like any other (each part's plugin must be installed; the error names a missing one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import pandas as pd
import torch
from torch import nn

from registry.plugin_api import Encoder, build_encoder, config_to_dict, hookimpl


@dataclass
class ConcatConfig:
    # [{"name": "mlp", "config": {"features": [...]}}, ...]
    parts: list[dict[str, Any]] = field(default_factory=list)


class ConcatEncoder(Encoder):
    name = "concat"
    config_class = ConcatConfig

    def __init__(self, config: ConcatConfig) -> None:
        super().__init__(config)
        if not config.parts:
            raise ValueError(
                'concat encoder needs at least one part: ConcatConfig(parts=[{"name": ..., "config": ...}])'
            )
        parts: list[Encoder] = []
        for i, part in enumerate(config.parts):
            if not isinstance(part, dict) or set(part) != {"name", "config"}:
                raise ValueError(
                    f"concat encoder part {i} is {part!r}; each part must be a dict with keys "
                    f"'name' (an encoder name) and 'config' (that encoder's config dict)"
                )
            parts.append(build_encoder(part["name"], part["config"]))
        self.parts = nn.ModuleList(parts)

    @property
    def features(self) -> list[str]:
        # Union in first-seen order: the feature frame needs each column once.
        return list(dict.fromkeys(f for part in self.sub_encoders() for f in part.features))

    def sub_encoders(self) -> list[Encoder]:
        # The parts, typed: an nn.ModuleList iterates as plain nn.Modules.
        return cast("list[Encoder]", list(self.parts))

    def params(self) -> dict[str, Any]:
        return {
            "parts": [
                {"name": p["name"], "config": part.params()}
                for p, part in zip(self.config.parts, self.sub_encoders(), strict=True)
            ]
        }

    @property
    def output_dim(self) -> int:
        return sum(part.output_dim for part in self.sub_encoders())

    def fit(self, frame: pd.DataFrame) -> None:
        for part in self.sub_encoders():
            part.fit(frame)
        # A part's fit() may complete its config (the text encoder's tokenizer); save what the parts now hold.
        self.config.parts = [
            {"name": spec["name"], "config": config_to_dict(part.config)}
            for spec, part in zip(self.config.parts, self.sub_encoders(), strict=True)
        ]

    def featurize(self, frame: pd.DataFrame) -> dict[str, torch.Tensor]:
        # Prefix each part's keys with its index so two parts may both use "x".
        batch = {}
        for i, part in enumerate(self.sub_encoders()):
            batch.update({f"{i}.{key}": value for key, value in part.featurize(frame).items()})
        return batch

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        outputs = []
        for i, part in enumerate(self.sub_encoders()):
            prefix = f"{i}."
            outputs.append(part({k[len(prefix) :]: v for k, v in batch.items() if k.startswith(prefix)}))
        return torch.cat(outputs, dim=-1)  # (B, sum of the parts' D)


@hookimpl
def register_encoders(register) -> None:
    register(ConcatEncoder)
