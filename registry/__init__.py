"""shopscore core: SQL model registry, plugin host, training and serving.

The public Python API is re-exported here; see docs/ for each part.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.hookspecs import hookimpl

if TYPE_CHECKING:
    from registry.components import Encoder, Head

__all__ = ["Encoder", "Head", "hookimpl"]


def __getattr__(name: str) -> Any:
    # torch is imported only when a model part is asked for: the registry CLI, migrations and the
    # processes that only read or write the SQL registry start in a fraction of a second without it.
    if name in ("Encoder", "Head"):
        from registry import components

        return getattr(components, name)
    raise AttributeError(f"module 'registry' has no attribute {name!r}")
