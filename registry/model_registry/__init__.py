"""The SQL model registry: registered models, versions, aliases and their audit log.

    from registry.model_registry import ModelRegistry
    registry = ModelRegistry.open()          # SHOPSCORE_DATABASE_URL, or the SQLite file in the workspace

Names are imported lazily so that `registry.model_registry.artifacts` (which raises the errors defined here) and the
store can import each other's modules without a cycle.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ModelRegistry": "registry.model_registry.store",
    "PromotionPolicy": "registry.model_registry.promotion",
    "ModelVersion": "registry.model_registry.records",
    "RegisteredModel": "registry.model_registry.records",
    "AliasEvent": "registry.model_registry.records",
    "Comparison": "registry.model_registry.records",
    "FieldDiff": "registry.model_registry.records",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'registry.db' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
