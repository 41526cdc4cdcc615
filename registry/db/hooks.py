"""How the registry calls plugins: promotion checks (may veto) and lifecycle events (after commit).

Each hook implementation is called on its own so that every veto and every failure names its plugin.
"""

from __future__ import annotations

import logging
from typing import Any

import pluggy

from registry import hookspecs
from registry.db.errors import PluginsUnavailable

log = logging.getLogger("registry.db")


def bare_plugin_manager() -> pluggy.PluginManager:
    """A plugin manager with shopscore's hookspecs and no plugins (for tools and tests that load none)."""
    pm = pluggy.PluginManager("shopscore")
    pm.add_hookspecs(hookspecs)
    return pm


def default_plugin_manager() -> pluggy.PluginManager:
    """The process-wide host's plugin manager (loads the installed plugins on first use)."""
    from registry.plugin_host import PluginError, default_host

    try:
        return default_host().pm
    except PluginError as exc:
        raise PluginsUnavailable(
            f"{exc} (the registry runs every plugin's check_promotion and lifecycle hooks, so it needs them)"
        ) from exc


def _call(impl: pluggy.HookImpl, kwargs: dict[str, Any]) -> Any:
    # pluggy lets an implementation accept any subset of the spec's arguments.
    return impl.function(**{name: kwargs[name] for name in impl.argnames})


def collect_vetoes(pm: pluggy.PluginManager, candidate: Any, current: Any) -> list[str]:
    """Every veto reason from `check_promotion` implementations, each prefixed with its plugin's name.

    An implementation may return None (no objection), a reason string or a list of reason strings. One that
    raises vetoes too: a check that could not run has not passed.
    """
    reasons: list[str] = []
    kwargs = {"candidate": candidate, "current": current}
    for impl in pm.hook.check_promotion.get_hookimpls():
        try:
            result = _call(impl, kwargs)
        except Exception as exc:  # a broken check must block the promotion, and say which plugin broke
            reasons.append(f"plugin {impl.plugin_name!r}: check_promotion raised {exc!r}")
            continue
        if result is None:
            continue
        for reason in [result] if isinstance(result, str) else list(result):
            reasons.append(f"plugin {impl.plugin_name!r}: {reason}")
    return reasons


def fire(pm: pluggy.PluginManager, hook_name: str, **kwargs: Any) -> None:
    """Call a lifecycle hook after a commit. A failing plugin is logged, not raised: the change it reacts to
    is already committed, and an exception would make the caller believe it was not."""
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        try:
            _call(impl, kwargs)
        except Exception:
            log.exception(
                "plugin %r failed in %s; the registry change itself is committed", impl.plugin_name, hook_name
            )
