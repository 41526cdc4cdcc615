"""Feature builders and Feast wiring. `push_events` and `read_online` are the serving-side entry points.

They import Feast lazily, so the contract (`registry.features.contract`) and the builders (`snapshots`,
`sequences`, `realtime`, `lifetime`, `files`, `build`) stay cheap to import.
"""

from __future__ import annotations

from typing import Any

__all__ = ["push_events", "read_online"]


def __getattr__(name: str) -> Any:
    if name == "push_events":
        from registry.features.push import push_events

        return push_events
    if name == "read_online":
        from registry.features import online

        return getattr(online, name)
    raise AttributeError(f"module 'registry.features' has no attribute {name!r}")
