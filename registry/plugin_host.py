"""Finds plugins through the `shopscore` entry-point group and collects what they register.

Built-in parts (the top-level `plugins` package) are loaded exactly like a team's package: core never
imports them by name. `SHOPSCORE_LOAD_PLUGINS` (comma-separated entry-point names) is an allowlist,
`SHOPSCORE_DISABLE_PLUGINS` a blocklist.
"""

from __future__ import annotations

import contextvars
import dataclasses
import importlib.metadata
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache

import pluggy

from registry import hookspecs
from registry.components import ANSWER_FIELDS, Encoder, Head

GROUP = "shopscore"


class PluginError(RuntimeError):
    """A plugin failed to load or registered something invalid. The message names the plugin and the fix."""


@dataclass
class Registered:
    """One registered component class and the plugin (entry-point name) plus package that provided it."""

    cls: type
    plugin: str
    package: str | None
    package_version: str | None


@dataclass
class PluginHost:
    pm: pluggy.PluginManager
    encoders: dict[str, Registered] = field(default_factory=dict)
    heads: dict[str, Registered] = field(default_factory=dict)
    # plugin name -> (distribution name, version)
    packages: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)

    def encoder(self, name: str) -> Registered:
        return _lookup(self.encoders, name, "encoder")

    def head(self, name: str) -> Registered:
        return _lookup(self.heads, name, "head")


def _lookup(table: dict[str, Registered], name: str, kind: str) -> Registered:
    try:
        return table[name]
    except KeyError:
        raise PluginError(
            f"no {kind} named {name!r} is registered; available: {sorted(table)}. "
            f"Install the plugin package that provides it (`shopscore plugins` lists what is loaded), "
            f"and check SHOPSCORE_LOAD_PLUGINS / SHOPSCORE_DISABLE_PLUGINS."
        ) from None


def _names_from_env(variable: str) -> set[str] | None:
    raw = os.environ.get(variable)
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def _collect(host: PluginHost, kind: str, base: type, table: dict[str, Registered]) -> None:
    hook = getattr(host.pm.hook, f"register_{kind}s")
    for impl in hook.get_hookimpls():
        plugin_name = impl.plugin_name
        package, version = host.packages.get(plugin_name, (None, None))

        def register(
            cls: type,
            _plugin: str = plugin_name,
            _package: str | None = package,
            _version: str | None = version,
        ) -> None:
            if not (isinstance(cls, type) and issubclass(cls, base)):
                raise PluginError(
                    f"plugin {_plugin!r} registered {cls!r} as a {kind}, but it is not a subclass of "
                    f"registry.{base.__name__}; register the class itself, derived from {base.__name__}"
                )
            name = getattr(cls, "name", None)
            if not isinstance(name, str) or not name:
                raise PluginError(
                    f"plugin {_plugin!r}: {kind} {cls.__name__} has no `name`; set a class attribute, "
                    f'e.g. name = "my_{kind}"'
                )
            config_class = getattr(cls, "config_class", None)
            if not (isinstance(config_class, type) and dataclasses.is_dataclass(config_class)):
                raise PluginError(
                    f"plugin {_plugin!r}: {kind} {name!r} ({cls.__name__}) needs `config_class`, a dataclass "
                    f"its __init__ takes (models are saved as that config's JSON), not {config_class!r}"
                )
            if kind == "head" and getattr(cls, "answer", None) not in ANSWER_FIELDS:
                raise PluginError(
                    f"plugin {_plugin!r}: head {name!r} ({cls.__name__}) answers {cls.answer!r}, which a Score "
                    f"cannot carry; set `answer` to one of {sorted(ANSWER_FIELDS)}"
                )
            if name in table:
                raise PluginError(
                    f"plugin {_plugin!r} registered {kind} {name!r}, already registered by plugin "
                    f"{table[name].plugin!r}; rename one of them or disable a plugin with "
                    f"SHOPSCORE_DISABLE_PLUGINS"
                )
            table[name] = Registered(cls, _plugin, _package, _version)

        impl.function(register=register)


def load_plugins() -> PluginHost:
    """Load every allowed entry point of the `shopscore` group and collect encoders and heads."""
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    host = PluginHost(pm)
    allow = _names_from_env("SHOPSCORE_LOAD_PLUGINS")
    deny = _names_from_env("SHOPSCORE_DISABLE_PLUGINS") or set()
    for ep in importlib.metadata.entry_points(group=GROUP):
        if (allow is not None and ep.name not in allow) or ep.name in deny or pm.has_plugin(ep.name):
            continue
        dist = ep.dist
        package = dist.name if dist else None
        try:
            module = ep.load()
        except Exception as exc:  # any import failure must name the plugin, not surface as a bare traceback
            raise PluginError(
                f"plugin {ep.name!r} (package {package or 'unknown'}) failed to import {ep.value!r}: "
                f"{exc!r}. "
                f"Fix or reinstall that package, or skip it with SHOPSCORE_DISABLE_PLUGINS={ep.name}"
            ) from exc
        pm.register(module, name=ep.name)
        host.packages[ep.name] = (package, dist.version if dist else None)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"{exc}. Hook names are listed in docs/plugins.md") from exc
    _collect(host, "encoder", Encoder, host.encoders)
    _collect(host, "head", Head, host.heads)
    return host


@lru_cache(maxsize=1)
def default_host() -> PluginHost:
    """The process-wide plugin host (loaded once; tests call `default_host.cache_clear()`)."""
    return load_plugins()


# The host a model is being built from, so that a part made of other parts (the `concat` encoder) builds
# them from the same host as ShopModel.build, not from the process-wide one.
_building_with: contextvars.ContextVar[PluginHost | None] = contextvars.ContextVar(
    "building_with", default=None
)


@contextmanager
def building_with(host: PluginHost) -> Iterator[None]:
    token = _building_with.set(host)
    try:
        yield
    finally:
        _building_with.reset(token)


def active_host() -> PluginHost:
    """The host of the model being built (see `building_with`), else the process-wide one."""
    return _building_with.get() or default_host()
