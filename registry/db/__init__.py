"""The SQL model registry: registered models, versions, aliases and their audit log.

    from registry.db import ModelRegistry
    registry = ModelRegistry.open()          # SHOPSCORE_DATABASE_URL, or the SQLite file in the workspace

Names are imported lazily so that `registry.artifacts` (which raises the errors defined here) and the
store can import each other's modules without a cycle.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ModelRegistry": "registry.db.store",
    "PromotionPolicy": "registry.db.promotion",
    "ModelVersion": "registry.db.records",
    "RegisteredModel": "registry.db.records",
    "AliasEvent": "registry.db.records",
    "Comparison": "registry.db.records",
    "FieldDiff": "registry.db.records",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'registry.db' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
