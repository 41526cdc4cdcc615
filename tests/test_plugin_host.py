"""Plugins are found through the `shopscore` entry-point group; bad registrations blame the plugin."""

from __future__ import annotations

import pluggy
import pytest

from registry import Encoder, Head, hookimpl
from registry.plugin_host import PluginError, PluginHost, _collect, load_plugins


def test_builtin_parts_load_through_entry_points():
    host = load_plugins()
    assert host.encoder("mlp").plugin == "mlp"
    assert host.head("purchase").plugin == "purchase"
    assert host.encoder("mlp").package == "shopscore"


def test_blocklist_and_allowlist(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SHOPSCORE_DISABLE_PLUGINS", "mlp")
    host = load_plugins()
    assert "mlp" not in host.encoders and "purchase" in host.heads
    monkeypatch.delenv("SHOPSCORE_DISABLE_PLUGINS")
    monkeypatch.setenv("SHOPSCORE_LOAD_PLUGINS", "mlp")
    host = load_plugins()
    assert "mlp" in host.encoders and "purchase" not in host.heads


def test_unknown_encoder_names_what_is_available():
    with pytest.raises(PluginError, match=r"no encoder named 'transformerz'.*available: \['concat', 'mlp'"):
        load_plugins().encoder("transformerz")


def _host_with(*plugins: tuple[str, object]) -> PluginHost:
    from registry import hookspecs

    pm = pluggy.PluginManager("shopscore")
    pm.add_hookspecs(hookspecs)
    for name, plugin in plugins:
        pm.register(plugin, name=name)
    return PluginHost(pm)


class NotAnEncoder:
    name = "bad"


class Team:
    class TeamEncoder(Encoder):
        name = "mlp"  # clashes with the built-in on purpose

    @staticmethod
    @hookimpl
    def register_encoders(register):
        register(Team.TeamEncoder)


def test_wrong_type_is_blamed_on_the_plugin():
    class Bad:
        @staticmethod
        @hookimpl
        def register_encoders(register):
            register(NotAnEncoder)

    host = _host_with(("team_bad", Bad))
    with pytest.raises(PluginError, match=r"plugin 'team_bad' registered .*NotAnEncoder.* not a subclass of registry.Encoder"):
        _collect(host, "encoder", Encoder, host.encoders)


def test_duplicate_name_names_both_plugins():
    class Builtin:
        class MLP(Encoder):
            name = "mlp"

        @staticmethod
        @hookimpl
        def register_encoders(register):
            register(Builtin.MLP)

    host = _host_with(("builtin", Builtin), ("team", Team))
    with pytest.raises(PluginError, match=r"encoder 'mlp', already registered by plugin"):
        _collect(host, "encoder", Encoder, host.encoders)


def test_misspelled_hook_fails_loudly():
    class Typo:
        @staticmethod
        @hookimpl
        def register_encoderz(register):  # not a hook
            pass

    host = _host_with(("typo", Typo))
    with pytest.raises(pluggy.PluginValidationError, match="register_encoderz"):
        host.pm.check_pending()


def test_heads_must_derive_from_head():
    class Wrong:
        @staticmethod
        @hookimpl
        def register_heads(register):
            register(Team.TeamEncoder)

    host = _host_with(("wrong", Wrong))
    with pytest.raises(PluginError, match="not a subclass of registry.Head"):
        _collect(host, "head", Head, host.heads)
