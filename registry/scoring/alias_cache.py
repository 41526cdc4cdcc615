"""Which version each alias of a model points to, as a server sees it: polled, not asked per request.

The map of a model's aliases is refreshed with one indexed registry query at most every `poll_s` seconds
(default 0.5 s), so an alias move is served within a second without a restart, and a request costs no query.
"""

from __future__ import annotations

import threading
import time

from registry.model_registry import validate
from registry.model_registry.store import ModelRegistry, ModelVersion


class AliasCache:
    """alias -> version records of the model registry, at most `poll_s` old; safe to share between threads."""

    def __init__(self, registry: ModelRegistry, *, poll_s: float = 0.5) -> None:
        self.registry = registry
        self.poll_s = poll_s
        self._aliases: dict[str, tuple[float, dict[str, int]]] = {}  # model -> (monotonic poll time, map)
        self._versions: dict[tuple[str, int], ModelVersion] = {}  # versions never change once registered
        self._lock = threading.Lock()

    def aliases(self, model: str) -> dict[str, int]:
        """{alias: version} of `model`, at most `poll_s` old: one indexed registry query per poll."""
        cached = self._aliases.get(model)
        if cached is not None and time.monotonic() - cached[0] < self.poll_s:
            return cached[1]
        validate.model_name(model)  # refuse junk before it reaches SQL (InvalidInput names the rule)
        with self._lock:
            cached = self._aliases.get(model)
            if cached is not None and time.monotonic() - cached[0] < self.poll_s:
                return cached[1]  # another thread polled while this one waited
            aliases = self.registry.alias_versions(model)
            self._aliases[model] = (time.monotonic(), aliases)
            return aliases

    def resolve(self, model: str, alias: str) -> ModelVersion:
        """The version `alias` points at, as of the last poll (at most `poll_s` ago)."""
        number = self.aliases(model).get(alias)
        if number is None:
            validate.alias_name(alias)
            # Unknown model or alias (or one created since the last poll): ask the registry, which either
            # finds it or raises UnknownModel / UnknownAlias with a message naming the fix.
            number = self.registry.resolve(model, alias).version
            self.invalidate(model)
        key = (model, number)
        if key not in self._versions:
            self._versions[key] = self.registry.get_version(model, number)
        return self._versions[key]

    def invalidate(self, model: str) -> None:
        """Forget `model`'s map so the next request polls (after this process moved an alias)."""
        with self._lock:
            self._aliases.pop(model, None)
