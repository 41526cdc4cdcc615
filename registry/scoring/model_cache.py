"""Loaded models, one per registered version: fetched, verified against the registry's sha256, checked."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from registry.model_registry.artifacts import fetch_artifact
from registry.model_registry.store import ModelVersion
from registry.modeling.shop_model import ShopModel

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


class ModelCache:
    """Loads each version once, on the device given; safe to share between threads."""

    def __init__(self, device: str | torch.device) -> None:
        self.device = device
        self._models: dict[tuple[str, int], ShopModel] = {}
        self._lock = threading.Lock()

    def get(self, version: ModelVersion) -> ShopModel:
        key = (version.model, version.version)
        model = self._models.get(key)
        if model is not None:
            return model
        with self._lock:
            if key not in self._models:
                directory = fetch_artifact(version.artifact_uri, version.sha256)
                loaded = ShopModel.from_pretrained(directory, device=self.device)
                loaded.self_check()  # a version whose parts break their contract is refused, never served
                self._models[key] = loaded
                log.info("loaded %s v%d on %s", version.model, version.version, self.device)
            return self._models[key]

    def loaded(self) -> list[tuple[str, int]]:
        return sorted(self._models)
