"""shopscore core: SQL model registry, plugin host, training and serving.

The public Python API is re-exported here; see docs/ for each part.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.hookspecs import hookimpl

if TYPE_CHECKING:
    from registry.components import Encoder, Head
    from registry.db.records import AliasEvent, ModelVersion
    from registry.db.store import ModelRegistry

# Imported on first access: torch is loaded only when a model part is asked for, so the registry CLI,
# migrations and processes that only use the SQL registry start in a fraction of a second.
_LAZY = {
    "Encoder": "registry.components",
    "Head": "registry.components",
    "ModelRegistry": "registry.db.store",
    "ModelVersion": "registry.db.records",
    "AliasEvent": "registry.db.records",
}

__all__ = ["AliasEvent", "Encoder", "Head", "ModelRegistry", "ModelVersion", "hookimpl"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'registry' has no attribute {name!r}")
