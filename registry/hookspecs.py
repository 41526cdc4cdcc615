"""The hooks a shopscore plugin may implement (docs/plugins.md documents each, with an example plugin).

Marker, hookimpl marker and entry-point group are all named `shopscore`, so a plugin package declares

    [project.entry-points.shopscore]
    my_plugin = "my_package.my_module"

and decorates functions in that module with `@hookimpl` from `registry.plugin_api`; `registry.plugin_host.
PluginHost` is the only caller of these hooks. An implementation may accept any subset
of a hook's arguments, by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

import pluggy

if TYPE_CHECKING:
    from registry.model_registry.records import AliasEvent, ModelVersion
    from registry.modeling.parts import Encoder, Head

hookspec = pluggy.HookspecMarker("shopscore")
hookimpl = pluggy.HookimplMarker("shopscore")

# What `register_encoders` / `register_heads` receive: call it once per class (not instance).
RegisterEncoder: TypeAlias = "Callable[[type[Encoder]], None]"
RegisterHead: TypeAlias = "Callable[[type[Head]], None]"
# What `check_promotion` may return: no objection, one reason, or several.
Veto: TypeAlias = "str | list[str] | None"


@hookspec
def register_encoders(register: RegisterEncoder) -> None:
    """Register encoder classes: call `register(MyEncoder)` once per class.

    An encoder is a `registry.plugin_api.Encoder` subclass with a unique `name` and a `config_class` dataclass. Called
    once per process when the plugin host loads. The host raises `PluginError`, naming the plugin, for a
    class that is not an Encoder subclass, has no `name`, or reuses a registered name.
    """


@hookspec
def register_heads(register: RegisterHead) -> None:
    """Register prediction head classes: call `register(MyHead)` once per class.

    A head is a `registry.plugin_api.Head` subclass with a unique `name`, a `config_class` dataclass, and its
    task declared (`label`, `compute_label`, `answer`, `evaluation`); the host refuses, naming the plugin, a
    head that lacks one of them.
    """


@hookspec
def on_model_registered(version: ModelVersion) -> None:
    """Called after a new model version is committed to the registry (never for a rolled-back one).

    `version` is the new `registry.ModelVersion` (model, version, metrics, lineage, artifact). An exception
    is logged with the plugin's name and does not undo the registration.
    """


@hookspec
def on_alias_changed(event: AliasEvent) -> None:
    """Called after an alias move (set or rollback) is committed. `event` is the `registry.AliasEvent`
    (who, when, from, to, why). An exception is logged with the plugin's name and does not undo the move."""


@hookspec
def check_promotion(candidate: ModelVersion, current: ModelVersion | None) -> Veto:
    """Veto a move of a protected alias by returning a reason (or a list of reasons); None allows it.

    `candidate` is the `registry.ModelVersion` about to receive the alias, `current` the one holding it
    now (None when the alias is new). Called before the move, inside its transaction; an implementation
    that raises vetoes the move too. `force=True` overrides vetoes, recorded in the audit log.
    """
