"""Plugins are found through the `shopscore` entry-point group; bad registrations blame the plugin."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import warnings

import pytest

from registry.plugin_api import Encoder, Head, hookimpl
from registry.plugin_host import PluginError, PluginHost, load_plugins


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
    host = PluginHost()
    for name, plugin in plugins:
        host.add(plugin, name, package=f"shopscore-{name}", version="1.0")
    return host


class NotAnEncoder:
    name = "bad"


@dataclasses.dataclass
class EmptyConfig:
    pass


class Team:
    class TeamEncoder(Encoder):
        name = "mlp"  # clashes with the built-in on purpose
        config_class = EmptyConfig

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
    with pytest.raises(
        PluginError,
        match=r"plugin 'team_bad' \(package shopscore-team_bad 1.0\) registered .*NotAnEncoder.* not a subclass of registry.plugin_api.Encoder",
    ):
        host.encoders  # noqa: B018


def test_duplicate_name_names_both_plugins():
    class Builtin:
        class MLP(Encoder):
            name = "mlp"
            config_class = EmptyConfig

        @staticmethod
        @hookimpl
        def register_encoders(register):
            register(Builtin.MLP)

    host = _host_with(("builtin", Builtin), ("team", Team))
    with pytest.raises(PluginError, match=r"encoder 'mlp', already registered by plugin"):
        host.encoders  # noqa: B018


def test_misspelled_hook_names_the_plugin_its_package_the_hook_and_the_way_out():
    class Typo:
        @staticmethod
        @hookimpl
        def register_encoderz(register):  # not a hook
            pass

    with pytest.raises(
        PluginError,
        match=r"plugin 'typo' \(package shopscore-typo 1.0\) implements hook 'register_encoderz', which "
        r"shopscore does not define; did you mean 'register_encoders'\?.*SHOPSCORE_DISABLE_PLUGINS=typo",
    ):
        _host_with(("typo", Typo))


def test_heads_must_derive_from_head():
    class Wrong:
        @staticmethod
        @hookimpl
        def register_heads(register):
            register(Team.TeamEncoder)

    host = _host_with(("wrong", Wrong))
    with pytest.raises(PluginError, match="not a subclass of registry.plugin_api.Head"):
        host.heads  # noqa: B018


def test_a_head_that_does_not_declare_its_task_is_blamed_on_the_plugin():
    class Odd:
        class OddHead(Head):
            name = "odd"
            config_class = EmptyConfig
            answer = "likelihood"  # a bare string, not an Answer

        @staticmethod
        @hookimpl
        def register_heads(register):
            register(Odd.OddHead)

    host = _host_with(("odd", Odd))
    with pytest.raises(
        PluginError,
        match=r"plugin 'odd' \(package shopscore-odd 1.0\): head 'odd' \(OddHead\) needs `label`.*"
        r"`compute_label\(window\)`.*`answer`, an Answer.*`evaluation`, one of BINARY, REGRESSION, CATEGORIES",
    ):
        host.heads  # noqa: B018


def test_two_heads_may_not_give_one_answer_two_types():
    from plugins.purchase import PurchaseHead
    from registry.plugin_api import AMOUNT, Answer

    class Rival:
        class RivalHead(PurchaseHead):
            name = "rival"
            answer = Answer("probability", AMOUNT, "not a probability at all")

        @staticmethod
        @hookimpl
        def register_heads(register):
            register(Rival.RivalHead)

    import plugins.purchase

    host = _host_with(("purchase", plugins.purchase), ("rival", Rival))
    with pytest.raises(
        PluginError, match=r"head 'rival' answers 'probability' as amount, but head 'purchase'"
    ):
        host.heads  # noqa: B018


def test_missing_name_and_config_class_are_blamed_on_the_plugin():
    class Nameless(Encoder):
        config_class = EmptyConfig

    class NoConfig(Encoder):
        name = "no_config"

    for cls, message in [
        (Nameless, r"plugin 'sloppy' .*: encoder Nameless has no `name`; set a class attribute"),
        (NoConfig, r"plugin 'sloppy' .*: encoder 'no_config' .* needs `config_class`, a dataclass"),
    ]:

        class Sloppy:
            @staticmethod
            @hookimpl
            def register_encoders(register, _cls=cls):
                register(_cls)

        host = _host_with(("sloppy", Sloppy))
        with pytest.raises(PluginError, match=message):
            host.encoders  # noqa: B018


def test_plugin_that_raises_on_import_is_named_with_the_fix(monkeypatch: pytest.MonkeyPatch):
    real = importlib.metadata.entry_points(group="shopscore")
    broken = importlib.metadata.EntryPoint(name="broken", value="no_such_module_for_test", group="shopscore")
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [*real, broken])
    with pytest.raises(
        PluginError,
        match=r"plugin 'broken'.* failed to import 'no_such_module_for_test': ModuleNotFoundError.*"
        r"SHOPSCORE_DISABLE_PLUGINS=broken",
    ):
        load_plugins()
    monkeypatch.setenv("SHOPSCORE_DISABLE_PLUGINS", "broken")
    assert "mlp" in load_plugins().encoders  # the suggested fix works


def test_misspelled_hook_in_an_installed_plugin_fails_load_with_a_pointer_to_the_docs(monkeypatch):
    import types

    module = types.ModuleType("typo_plugin")

    @hookimpl
    def register_encoderz(register):  # not a hook
        pass

    module.register_encoderz = register_encoderz
    entry = importlib.metadata.EntryPoint(name="typo", value="typo_plugin", group="shopscore")
    monkeypatch.setitem(__import__("sys").modules, "typo_plugin", module)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [entry])
    with pytest.raises(
        PluginError, match=r"register_encoderz.*docs/plugins.md.*SHOPSCORE_DISABLE_PLUGINS=typo"
    ):
        load_plugins()


def test_plugins_command_lists_packages_hooks_and_parts():
    from click.testing import CliRunner

    from registry.cli import main

    result = CliRunner().invoke(main, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    listing = {p["name"]: p for p in json.loads(result.output)}
    assert {"mlp", "purchase", "concat", "spend", "next_category"} <= set(listing)
    assert listing["mlp"] == {
        "name": "mlp",
        "package": "shopscore",
        "version": importlib.metadata.version("shopscore"),
        "hooks": ["register_encoders"],
        "encoders": ["mlp"],
        "heads": [],
        "options": {"mlp": {"features": None, "hidden": [64, 32], "dropout": 0.1}},
    }
    assert listing["next_category"]["heads"] == ["next_category"]
    assert listing["concat"]["encoders"] == ["concat"]


def test_loading_a_model_saved_with_another_plugin_version_warns(tmp_path):
    from registry.modeling.shop_model import ShopModel

    path = ShopModel.build("mlp", {"features": ["a"]}, "purchase", {}, feature_service="s").save_pretrained(
        tmp_path
    )
    config = json.loads((path / "config.json").read_text())
    assert config["head"]["package"] == "shopscore"
    assert config["head"]["version"] == importlib.metadata.version("shopscore")  # recorded at save time
    config["head"]["version"] = "0.0.1"
    (path / "config.json").write_text(json.dumps(config))
    with pytest.warns(
        UserWarning,
        match=r"head 'purchase' was saved with shopscore 0.0.1, installed is .*Install shopscore==0.0.1",
    ):
        ShopModel.from_pretrained(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config["head"]["version"] = importlib.metadata.version("shopscore")
        (path / "config.json").write_text(json.dumps(config))
        ShopModel.from_pretrained(path)  # same version: no warning
