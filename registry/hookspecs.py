"""The hooks a shopscore plugin may implement.

Marker, hookimpl marker and entry-point group are all named `shopscore`, so a plugin package declares

    [project.entry-points.shopscore]
    my_plugin = "my_package.my_module"

and decorates functions in that module with `@registry.hookimpl`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from registry.components import Encoder, Head

hookspec = pluggy.HookspecMarker("shopscore")
hookimpl = pluggy.HookimplMarker("shopscore")


@hookspec
def register_encoders(register: Callable[[type[Encoder]], None]) -> None:
    """Register encoder classes: call `register(MyEncoder)` once per class.

    An encoder is a `registry.Encoder` subclass with a unique `name` and a `config_class` dataclass.
    """


@hookspec
def register_heads(register: Callable[[type[Head]], None]) -> None:
    """Register prediction head classes: call `register(MyHead)` once per class."""


@hookspec
def on_model_registered(version: Any) -> None:
    """Called after a new model version is committed to the registry (never for a rolled-back one).

    `version` is a `registry.ModelVersion`.
    """


@hookspec
def on_alias_changed(event: Any) -> None:
    """Called after an alias move is committed. `event` is a `registry.AliasEvent`."""


@hookspec
def check_promotion(candidate: Any, current: Any) -> str | list[str] | None:
    """Veto a move of a protected alias by returning a reason (or a list of reasons); return None to allow.

    `candidate` is the `registry.ModelVersion` about to receive the alias, `current` the one holding it
    now (or None). A check that raises vetoes too. The registry reports every veto, prefixed with the
    plugin's name; `force=True` overrides them (audited).
    """
