"""shopscore core: SQL model registry, plugin host, training and serving.

The public Python API is re-exported here; see docs/ for each part.
"""

from registry.components import Encoder, Head
from registry.hookspecs import hookimpl

__all__ = ["Encoder", "Head", "hookimpl"]
