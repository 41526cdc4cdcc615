"""The plugin host: loads plugins through the `shopscore` entry-point group and calls their hooks.

Built-in parts (the top-level `plugins` package) are loaded exactly like a team's package: core never
imports them by name. `SHOPSCORE_LOAD_PLUGINS` (comma-separated entry-point names) is an allowlist,
`SHOPSCORE_DISABLE_PLUGINS` a blocklist.

`PluginHost` is the only caller of hooks: one typed method per hook (registry.hookspecs), each calling one
plugin at a time through pluggy so that a veto, a failure or a registered part always names its plugin.
The registry (lifecycle and promotion hooks) and training (parts) share the process-wide host.
"""

from __future__ import annotations

import contextvars
import dataclasses
import difflib
import importlib.metadata
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pluggy

from registry import hookspecs
from registry.errors import UserError
from registry.settings import plugin_selection

if TYPE_CHECKING:
    from registry.model_registry.records import AliasEvent, ModelVersion
    from registry.modeling.parts import Encoder, Head

GROUP = "shopscore"
log = logging.getLogger("shopscore.plugins")

# The kind of part a Registered holds: Registered[Encoder] or Registered[Head].
Part = TypeVar("Part", bound="Encoder | Head")


class PluginError(UserError, RuntimeError):
    """A plugin failed to load, registered something invalid or raised. The message names the plugin and the
    fix."""


def new_plugin_manager() -> pluggy.PluginManager:
    """The one place a pluggy PluginManager is made: shopscore's hookspecs, no plugins yet."""
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    return pm


@dataclass(frozen=True)
class Registered(Generic[Part]):
    """One registered part class and the plugin (entry-point name) plus package that provided it."""

    cls: type[Part]
    plugin: str
    package: str | None
    package_version: str | None

    def describe(self) -> str:
        """E.g. "plugin 'acme' (package shopscore-acme 0.3.0)"."""
        return describe_plugin(self.plugin, self.package, self.package_version)


def describe_plugin(plugin: str, package: str | None, version: str | None = None) -> str:
    where = f" (package {package}{' ' + version if version else ''})" if package else ""
    return f"plugin {plugin!r}{where}"


def disable_hint(plugin: str) -> str:
    return f"if the plugin is at fault, fix it or disable it with SHOPSCORE_DISABLE_PLUGINS={plugin}"


class PluginHost:
    """The loaded plugins: their parts (encoders and heads) and one typed method per lifecycle hook."""

    def __init__(self, pm: pluggy.PluginManager | None = None) -> None:
        self.pm = pm or new_plugin_manager()
        # plugin name -> (distribution name, version)
        self.packages: dict[str, tuple[str | None, str | None]] = {}
        self._parts: tuple[dict[str, Registered[Encoder]], dict[str, Registered[Head]]] | None = None

    # ------------------------------------------------------------------------------------ plugins

    def add(
        self, module: object, name: str, *, package: str | None = None, version: str | None = None
    ) -> None:
        """Register a plugin module (what loading an entry point does; tests and tools call it directly).
        A function marked @hookimpl whose name is not a shopscore hook is refused, naming the plugin."""
        self.pm.register(module, name=name)
        self.packages[name] = (package, version)
        self._parts = None
        for caller in self.pm.get_hookcallers(module) or []:
            if not caller.has_spec():
                self.pm.unregister(module)
                known = sorted(n for n, c in vars(self.pm.hook).items() if c.has_spec())
                close = difflib.get_close_matches(caller.name, known, n=1)
                guess = f"; did you mean {close[0]!r}?" if close else ""
                raise PluginError(
                    f"{describe_plugin(name, package, version)} implements hook {caller.name!r}, which shopscore "
                    f"does not define{guess} The hooks are {', '.join(known)} (docs/plugins.md); rename the "
                    f"function, or disable the plugin with SHOPSCORE_DISABLE_PLUGINS={name}"
                )

    def _one_by_one(self, caller: pluggy.HookCaller) -> Iterator[tuple[str, pluggy.HookCaller]]:
        """(plugin name, a caller of that plugin's implementation alone) for each implementation of a hook,
        so each result and each failure is attributed; pluggy still does the calling."""
        plugins = self.pm.get_plugins()
        for impl in caller.get_hookimpls():
            others = [p for p in plugins if p is not impl.plugin]
            yield impl.plugin_name, self.pm.subset_hook_caller(caller.name, remove_plugins=others)

    def _describe(self, plugin: str) -> str:
        return describe_plugin(plugin, *self.packages.get(plugin, (None, None)))

    # -------------------------------------------------------------------------------------- parts

    @property
    def encoders(self) -> dict[str, Registered[Encoder]]:
        return self._collected()[0]

    @property
    def heads(self) -> dict[str, Registered[Head]]:
        return self._collected()[1]

    def encoder(self, name: str) -> Registered[Encoder]:
        return _lookup(self.encoders, name, "encoder")

    def head(self, name: str) -> Registered[Head]:
        return _lookup(self.heads, name, "head")

    def _collected(self) -> tuple[dict[str, Registered[Encoder]], dict[str, Registered[Head]]]:
        # Parts import torch; collected on first use so that the registry's use of the host stays light.
        if self._parts is None:
            from registry.modeling.parts import Encoder, Head

            encoders: dict[str, Registered[Encoder]] = {}
            heads: dict[str, Registered[Head]] = {}
            self._register_parts(self.pm.hook.register_encoders, "encoder", Encoder, encoders)
            self._register_parts(self.pm.hook.register_heads, "head", Head, heads)
            self._parts = (encoders, heads)
        return self._parts

    def _register_parts(
        self, hook: pluggy.HookCaller, kind: str, base: type[Part], table: dict[str, Registered[Part]]
    ) -> None:
        for plugin, call in self._one_by_one(hook):
            package, version = self.packages.get(plugin, (None, None))

            # A plugin may pass anything: _check_part refuses what is not a `base` subclass with a name.
            def register(
                cls: type[Part], _plugin: str = plugin, _pkg: str | None = package, _ver: str | None = version
            ) -> None:
                registered = Registered(cls, _plugin, _pkg, _ver)
                _check_part(registered, kind, base, table)
                table[cls.name] = registered

            try:
                call(register=register)
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(
                    f"{self._describe(plugin)} raised in register_{kind}s: {type(exc).__name__}: {exc}; "
                    f"{disable_hint(plugin)}"
                ) from exc

    # -------------------------------------------------------------------------------- lifecycle hooks

    def check_promotion(self, candidate: ModelVersion, current: ModelVersion | None) -> list[str]:
        """Every veto from `check_promotion` implementations, each prefixed with its plugin. One that raises
        vetoes too: a check that could not run has not passed."""
        reasons: list[str] = []
        for plugin, call in self._one_by_one(self.pm.hook.check_promotion):
            try:
                (result,) = call(candidate=candidate, current=current) or [None]
            except Exception as exc:
                reasons.append(
                    f"{self._describe(plugin)}: check_promotion raised {type(exc).__name__}: {exc} "
                    f"({disable_hint(plugin)})"
                )
                continue
            if result is not None:
                reasons += [
                    f"plugin {plugin!r}: {r}" for r in ([result] if isinstance(result, str) else result)
                ]
        return reasons

    def on_model_registered(self, version: ModelVersion) -> None:
        self._notify(self.pm.hook.on_model_registered, version=version)

    def on_alias_changed(self, event: AliasEvent) -> None:
        self._notify(self.pm.hook.on_alias_changed, event=event)

    def _notify(self, hook: pluggy.HookCaller, **kwargs: Any) -> None:
        """Call a lifecycle hook after a commit. A failure is logged, not raised: the change it reacts to is
        committed, and an exception would make the caller believe it was not."""
        for plugin, call in self._one_by_one(hook):
            try:
                call(**kwargs)
            except Exception as exc:
                log.error(
                    "%s failed in %s: %s: %s; the registry change itself is committed; %s",
                    self._describe(plugin), hook.name, type(exc).__name__, exc, disable_hint(plugin),
                    exc_info=exc,
                )  # fmt: skip


def _lookup(table: dict[str, Registered[Part]], name: str, kind: str) -> Registered[Part]:
    try:
        return table[name]
    except KeyError:
        raise PluginError(
            f"no {kind} named {name!r} is registered; available: {sorted(table)}. "
            f"Install the plugin package that provides it (`shopscore plugins` lists what is loaded), "
            f"and check SHOPSCORE_LOAD_PLUGINS / SHOPSCORE_DISABLE_PLUGINS."
        ) from None


def _check_part(part: Registered[Part], kind: str, base: type, table: dict[str, Registered[Part]]) -> None:
    """Refuse a part class that core could not use, naming the plugin and what to set."""
    cls, who = part.cls, part.describe()
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise PluginError(
            f"{who} registered {cls!r} as a {kind}, but it is not a subclass of registry.plugin_api."
            f"{base.__name__}; register the class itself, derived from {base.__name__}"
        )
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise PluginError(
            f'{who}: {kind} {cls.__name__} has no `name`; set a class attribute, e.g. name = "my_{kind}"'
        )
    config_class = getattr(cls, "config_class", None)
    if not (isinstance(config_class, type) and dataclasses.is_dataclass(config_class)):
        raise PluginError(
            f"{who}: {kind} {name!r} ({cls.__name__}) needs `config_class`, a dataclass its __init__ takes "
            f"(models are saved as that config's JSON), not {config_class!r}"
        )
    if kind == "head":
        _check_head(cls, name, who, table)
    if name in table:
        raise PluginError(
            f"{who} registered {kind} {name!r}, already registered by {table[name].describe()}; rename one of "
            f"them or disable a plugin with SHOPSCORE_DISABLE_PLUGINS"
        )


def _check_head(cls: type, name: str, who: str, heads: dict[str, Registered[Any]]) -> None:
    from registry.modeling.parts import Head
    from registry.modeling.tasks import Answer, Evaluation

    problems = []
    if not isinstance(getattr(cls, "label", None), str):
        problems.append('`label`, the label column\'s name as a class attribute (e.g. label = "label_churn")')
    if cls.compute_label.__func__ is Head.compute_label.__func__:  # type: ignore[attr-defined]
        problems.append("`compute_label(window)`, a classmethod computing the label from the window's events")
    answer = getattr(cls, "answer", None)
    if not isinstance(answer, Answer):
        problems.append(
            "`answer`, an Answer(name, type, description) such as Answer('churn_probability', PROBABILITY, ...)"
        )
    elif answer.problem():
        problems.append(f"a valid `answer`: {answer.problem()}")
    if not isinstance(getattr(cls, "evaluation", None), Evaluation):
        problems.append("`evaluation`, one of BINARY, REGRESSION, CATEGORIES")
    if problems:
        raise PluginError(f"{who}: head {name!r} ({cls.__name__}) needs " + "; ".join(problems))
    assert isinstance(answer, Answer)  # for mypy: no problem was found, so `answer` is an Answer
    for other in heads.values():
        if other.cls.answer.name == answer.name and other.cls.answer.type != answer.type:
            raise PluginError(
                f"{who}: head {name!r} answers {answer.name!r} as {answer.type.name}, but head "
                f"{other.cls.name!r} of {other.describe()} answers {answer.name!r} as {other.cls.answer.type.name}; "
                f"one served field has one type: rename the answer"
            )


def load_plugins() -> PluginHost:
    """Load every allowed entry point of the `shopscore` group."""
    host = PluginHost()
    allow, deny = plugin_selection()
    for ep in importlib.metadata.entry_points(group=GROUP):
        if (allow is not None and ep.name not in allow) or ep.name in deny or host.pm.has_plugin(ep.name):
            continue
        dist = ep.dist
        package, version = (dist.name, dist.version) if dist else (None, None)
        try:
            module = ep.load()
        except Exception as exc:  # any import failure must name the plugin, not surface as a bare traceback
            raise PluginError(
                f"{describe_plugin(ep.name, package, version)} failed to import {ep.value!r}: {exc!r}. "
                f"Fix or reinstall that package, or skip it with SHOPSCORE_DISABLE_PLUGINS={ep.name}"
            ) from exc
        host.add(module, ep.name, package=package, version=version)
    host.encoders  # noqa: B018 -- collect now: a plugin that registers a bad part fails at load, not later
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
