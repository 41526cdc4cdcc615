"""Per-model routing: which alias answers a request, and which alias is scored beside it in the shadows.

A request names a model and an alias. When the alias is the model's *entry alias* (default `production`)
the route applies:
- `split`: the request is answered by one of several aliases, chosen by a stable hash of the user id, so a
  user always sees the same alias while the split stays the same (e.g. 90% production / 10% candidate);
- `shadow`: another alias is scored on the same users after the answer is computed and the result is only
  logged (a structured `shopscore.shadow` log line), never returned.
A request that names any other alias explicitly is answered by that alias alone.

The configuration is a small YAML file (`SHOPSCORE_SERVING_CONFIG=serving.yaml`):

    models:
      purchase:
        split: {production: 0.9, candidate: 0.1}
        shadow: challenger
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from registry.settings import SERVING_CONFIG_VARIABLE, serving_config_path


class ServingConfigError(ValueError):
    """The serving configuration is malformed; the message names the key and the fix."""


def bucket(model: str, user_id: int) -> float:
    """A number in [0, 1) fixed by (model, user id): the same user lands in the same bucket on every replica
    and every restart (unlike Python's salted hash()). Salted with the model so splits are independent."""
    digest = hashlib.blake2b(f"{model}:{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class ModelRoute:
    """How requests for one model's entry alias are answered."""

    entry_alias: str = "production"
    # (alias, share) with shares summing to 1, in a fixed order: the order defines the hash ranges.
    split: tuple[tuple[str, float], ...] = ()
    shadow: str | None = None

    def __post_init__(self) -> None:
        if self.split:
            shares = [share for _, share in self.split]
            if any(not math.isfinite(s) or s < 0 for s in shares) or not math.isclose(sum(shares), 1.0):
                raise ServingConfigError(
                    f"split {dict(self.split)} must have shares >= 0 that sum to 1, e.g. "
                    f"{{production: 0.9, candidate: 0.1}}"
                )
        if self.shadow is not None and self.shadow in {alias for alias, _ in self.split}:
            raise ServingConfigError(
                f"shadow alias {self.shadow!r} also answers part of the split; a shadow is scored only to be "
                f"logged, so pick an alias outside the split"
            )

    def alias_for(self, model: str, user_id: int) -> str:
        """The alias that answers this user under the split (the entry alias when there is no split)."""
        if not self.split:
            return self.entry_alias
        point, upper = bucket(model, user_id), 0.0
        for alias, share in self.split:
            upper += share
            if point < upper:
                return alias
        return self.split[-1][0]  # point within rounding of 1.0

    def answering(self, model: str, alias: str, user_ids: list[int]) -> dict[str, list[int]]:
        """{answering alias: positions in `user_ids`} for a request to `alias`: the split applies only to the
        entry alias; any other alias answers every user itself."""
        if alias != self.entry_alias or not self.split:
            return {alias: list(range(len(user_ids)))}
        groups: dict[str, list[int]] = {}
        for position, user_id in enumerate(user_ids):
            groups.setdefault(self.alias_for(model, user_id), []).append(position)
        return groups

    def shadow_of(self, alias: str) -> str | None:
        """The alias scored in the shadows of a request to `alias` (only the entry alias has one)."""
        return self.shadow if alias == self.entry_alias else None


@dataclass(frozen=True)
class ServingConfig:
    models: Mapping[str, ModelRoute] = field(default_factory=dict)

    def route(self, model: str) -> ModelRoute:
        return self.models.get(model) or ModelRoute()

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> ServingConfig:
        raw = raw or {}
        unknown = set(raw) - {"models"}
        if unknown:
            raise ServingConfigError(
                f"serving config has unknown key(s) {sorted(unknown)}; only 'models' is read"
            )
        models: dict[str, ModelRoute] = {}
        for name, spec in (raw.get("models") or {}).items():
            spec = spec or {}
            extra = set(spec) - {"entry_alias", "split", "shadow"}
            if extra:
                raise ServingConfigError(
                    f"serving config for model {name!r} has unknown key(s) {sorted(extra)}; "
                    f"use entry_alias, split and shadow"
                )
            split = spec.get("split") or {}
            if not isinstance(split, Mapping):
                raise ServingConfigError(
                    f"split of model {name!r} must map alias -> share, e.g. {{production: 0.9}}"
                )
            models[name] = ModelRoute(
                entry_alias=str(spec.get("entry_alias", "production")),
                split=tuple((str(alias), float(share)) for alias, share in split.items()),
                shadow=spec.get("shadow"),
            )
        return cls(models=models)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> ServingConfig:
        path = Path(path)
        if not path.is_file():
            raise ServingConfigError(
                f"serving config {path} not found; fix {SERVING_CONFIG_VARIABLE} or create the file"
            )
        return cls.from_dict(yaml.safe_load(path.read_text()))

    @classmethod
    def from_env(cls) -> ServingConfig:
        """From the YAML file named by SHOPSCORE_SERVING_CONFIG; no routes (plain alias serving) if unset."""
        path = serving_config_path()
        return cls.from_yaml(path) if path else cls()
