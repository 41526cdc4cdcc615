"""shopscore core: SQL model registry, plugin host, training and serving.

The public Python API is importable from here. Heavy parts (Feast, the SQL registry) load on first use,
so `import registry` and `shopscore --help` stay fast.
"""

from importlib import import_module
from typing import Any

from registry.hookspecs import hookimpl

# Importing torch, Feast or SQLAlchemy costs seconds; the registry CLI, migrations and processes that only
# touch the SQL registry should not pay for what they don't use.
_LAZY = {
    "Encoder": "registry.components",
    "Head": "registry.components",
    "score": "registry.scoring",
    "score_many": "registry.scoring",
    "Score": "registry.scoring",
    "Scorer": "registry.scoring",
    "ModelRegistry": "registry.db.store",
    "ModelVersion": "registry.db.store",
    "AliasEvent": "registry.db.store",
    "ShopModel": "registry.modeling",
    "Settings": "registry.settings",
}

__all__ = ["hookimpl", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'registry' has no attribute {name!r}")
