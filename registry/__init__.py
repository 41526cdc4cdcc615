"""shopscore core: SQL model registry, plugin host, training and serving.

The public Python API is importable from here; plugins import from `registry.plugin_api`. Heavy parts load on first use, so `import registry`,
`shopscore --help`, migrations and processes that only touch the SQL registry stay fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from registry.hookspecs import hookimpl

if TYPE_CHECKING:
    from registry.model_registry.records import AliasEvent, ModelVersion
    from registry.model_registry.store import ModelRegistry
    from registry.modeling.parts import Encoder, Head
    from registry.modeling.shop_model import ShopModel
    from registry.scoring import Score, Scorer, score, score_many
    from registry.settings import Settings

# Importing torch, Feast or SQLAlchemy costs seconds; load each only when its names are asked for.
_LAZY = {
    "Encoder": "registry.modeling.parts",
    "Head": "registry.modeling.parts",
    "score": "registry.scoring",
    "score_many": "registry.scoring",
    "Score": "registry.scoring",
    "Scorer": "registry.scoring",
    "ModelRegistry": "registry.model_registry.store",
    "ModelVersion": "registry.model_registry.records",
    "AliasEvent": "registry.model_registry.records",
    "ShopModel": "registry.modeling.shop_model",
    "Settings": "registry.settings",
}

__all__ = [
    "AliasEvent",
    "Encoder",
    "Head",
    "ModelRegistry",
    "ModelVersion",
    "Score",
    "Scorer",
    "Settings",
    "ShopModel",
    "hookimpl",
    "score",
    "score_many",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'registry' has no attribute {name!r}")
