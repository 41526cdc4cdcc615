"""Protected aliases, promotion checks (built-in and plugin vetoes, force) and the lifecycle hooks that fire
after commit. Plugins here are real pluggy plugin objects registered on the plugin host's manager."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from registry_support import PROMOTER_TOKEN, register

from registry import hookimpl
from registry.model_registry.errors import AliasProtected, InvalidInput, PromotionRefused
from registry.model_registry.promotion import PromotionPolicy
from registry.model_registry.records import AliasEvent, ModelVersion
from registry.model_registry.store import ModelRegistry
from registry.plugin_host import PluginHost

pytest_plugins = ["registry_fixtures"]


# ------------------------------------------------------------------------------------- protected aliases


def test_protected_alias_needs_the_token_or_the_promoter_role(
    registry: ModelRegistry, registry_url: str, artifacts_root: Path, policy: PromotionPolicy, model_dir
) -> None:
    register(registry, "m", model_dir())
    register(registry, "m", model_dir())
    with pytest.raises(
        AliasProtected, match="alias 'production' of model 'm' is protected.*pass the promoter"
    ):
        registry.set_alias("m", "production", 1, reason="ship")
    with pytest.raises(AliasProtected, match="token given does not match SHOPSCORE_PROMOTER_TOKEN"):
        registry.set_alias("m", "production", 1, reason="ship", token="guess")
    assert registry.alias_events("m") == []

    registry.set_alias("m", "production", 1, reason="ship", token=PROMOTER_TOKEN)
    registry.set_alias("m", "staging", 2, reason="unprotected: anyone may move it")
    with pytest.raises(AliasProtected):
        registry.rollback("m", "production", reason="x")

    with ModelRegistry.open(
        registry_url,
        artifacts_root=artifacts_root,
        policy=policy,
        plugins=PluginHost(),
        role="promoter",
    ) as automation:
        automation.set_alias("m", "production", 2, reason="nightly promotion")
        automation.rollback("m", "production", reason="undo")
    assert [(e.alias, e.to_version) for e in registry.alias_events("m")] == [
        ("production", 1),
        ("staging", 2),
        ("production", 2),
        ("production", 1),
    ]


def test_without_a_configured_token_only_the_role_may_promote(
    registry_url: str, artifacts_root: Path
) -> None:
    policy = PromotionPolicy(promoter_token=None)
    with ModelRegistry.open(
        registry_url, artifacts_root=artifacts_root, policy=policy, plugins=PluginHost()
    ) as registry:
        with pytest.raises(AliasProtected, match="set SHOPSCORE_PROMOTER_TOKEN on the registry side"):
            registry.set_alias("m", "production", 1, reason="x", token="anything")
    with pytest.raises(InvalidInput, match="unknown registry role 'admin'"):
        ModelRegistry.open(registry_url, artifacts_root=artifacts_root, role="admin")


def test_policy_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPSCORE_PROTECTED_ALIASES", "production, champion")
    monkeypatch.setenv("SHOPSCORE_PROMOTER_TOKEN", "s3cret")
    monkeypatch.setenv("SHOPSCORE_PROMOTION_TOLERANCE", "0.05")
    policy = PromotionPolicy.from_env()
    assert policy.protected_aliases == {"production", "champion"}
    assert (policy.promoter_token, policy.tolerance) == ("s3cret", 0.05)
    monkeypatch.setenv("SHOPSCORE_PROTECTED_ALIASES", "")
    assert PromotionPolicy.from_env().protected_aliases == frozenset()
    monkeypatch.setenv("SHOPSCORE_PROMOTION_TOLERANCE", "a bit")
    with pytest.raises(InvalidInput, match="SHOPSCORE_PROMOTION_TOLERANCE='a bit' is not a number"):
        PromotionPolicy.from_env()


# ------------------------------------------------------------------------------------------ built-in check


def _promote(registry: ModelRegistry, version: int, **kwargs: Any) -> AliasEvent:
    return registry.set_alias("m", "production", version, reason="promote", token=PROMOTER_TOKEN, **kwargs)


def test_builtin_check_compares_test_pr_auc_and_horizon(registry: ModelRegistry, model_dir) -> None:
    register(registry, "m", model_dir(), pr_auc=0.30)  # v1
    register(registry, "m", model_dir(), pr_auc=0.50)  # v2
    register(registry, "m", model_dir(), pr_auc=0.48)  # v3: 0.02 worse than v2
    register(registry, "m", model_dir(), pr_auc=0.495)  # v4: within the 0.01 tolerance
    register(registry, "m", model_dir(), pr_auc=0.20, horizon_days=14)  # v5: worse and another horizon

    _promote(registry, 1)  # the first holder passes: nothing to compare with
    _promote(registry, 2)
    with pytest.raises(PromotionRefused, match=r"test_pr_auc of version 3 is 0\.4800, worse than 0\.5000"):
        _promote(registry, 3)
    _promote(registry, 4)
    with pytest.raises(PromotionRefused) as refused:
        _promote(registry, 5)
    assert len(refused.value.reasons) == 2
    assert "14-day horizon but version 4 a 7-day one" in refused.value.reasons[1]
    assert "--force" in str(refused.value)

    assert registry.resolve("m", "production").version == 4
    assert [e.to_version for e in registry.alias_events("m")] == [1, 2, 4]


def test_force_overrides_a_veto_and_is_audited(registry: ModelRegistry, model_dir) -> None:
    register(registry, "m", model_dir(), pr_auc=0.5)
    register(registry, "m", model_dir(), pr_auc=0.1)
    _promote(registry, 1)
    with pytest.raises(InvalidInput, match="needs a non-empty reason"):
        registry.set_alias("m", "production", 2, reason="", token=PROMOTER_TOKEN, force=True)
    event = registry.set_alias(
        "m",
        "production",
        2,
        reason="v1 leaks a feature; v2 is the honest one",
        token=PROMOTER_TOKEN,
        force=True,
    )
    assert event.forced and event.reason.startswith("v1 leaks")
    assert [e.forced for e in registry.alias_events("m")] == [False, True]


def test_candidate_without_the_metric_is_refused(registry: ModelRegistry, model_dir) -> None:
    register(registry, "m", model_dir())
    registry.register_version(
        "m", model_dir(), lineage=registry.get_version("m", 1).lineage, metrics={}, params={}
    )
    _promote(registry, 1)
    with pytest.raises(PromotionRefused, match="version 2 has no test_pr_auc metric"):
        _promote(registry, 2)


# --------------------------------------------------------------------------------- plugins on the host


class Recorder:
    """A plugin that records lifecycle events and can veto promotions."""

    def __init__(self, registry_url: str, artifacts_root: Path) -> None:
        self.registry_url = registry_url
        self.artifacts_root = artifacts_root
        self.registered: list[ModelVersion] = []
        self.changed: list[AliasEvent] = []
        self.checked: list[tuple[int, int | None]] = []
        self.veto: Any = None
        self.committed_when_called: list[bool] = []

    def _visible(self, model: str, version: int) -> bool:
        # A separate connection sees only committed data: proves the hook runs after the commit.
        with ModelRegistry.open(
            self.registry_url, artifacts_root=self.artifacts_root, plugins=PluginHost()
        ) as other:
            return version in [v.version for v in other.versions(model)]

    @hookimpl
    def on_model_registered(self, version: ModelVersion) -> None:
        self.committed_when_called.append(self._visible(version.model, version.version))
        self.registered.append(version)

    @hookimpl
    def on_alias_changed(self, event: AliasEvent) -> None:
        self.changed.append(event)

    @hookimpl
    def check_promotion(self, candidate: ModelVersion, current: ModelVersion | None) -> Any:
        self.checked.append((candidate.version, current.version if current else None))
        return self.veto


class Broken:
    @hookimpl
    def check_promotion(self, candidate: ModelVersion) -> None:
        raise RuntimeError("feature store unreachable")

    @hookimpl
    def on_alias_changed(self, event: AliasEvent) -> None:
        raise RuntimeError("webhook down")


@pytest.fixture
def host_pm(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The process-wide plugin host's manager, with no installed plugins loaded."""
    from registry.plugin_host import default_host

    monkeypatch.setenv("SHOPSCORE_LOAD_PLUGINS", "")
    default_host.cache_clear()
    yield default_host()
    default_host.cache_clear()


@pytest.fixture
def recorder(host_pm: Any, registry_url: str, artifacts_root: Path) -> Recorder:
    plugin = Recorder(registry_url, artifacts_root)
    host_pm.add(plugin, "recorder")
    return plugin


@pytest.fixture
def hosted(
    registry_url: str, artifacts_root: Path, policy: PromotionPolicy, host_pm: Any
) -> Iterator[ModelRegistry]:
    """A registry using the default plugin host (no plugins passed)."""
    with ModelRegistry.open(registry_url, artifacts_root=artifacts_root, policy=policy) as registry:
        yield registry


def test_hooks_fire_after_commit(hosted: ModelRegistry, recorder: Recorder, model_dir) -> None:
    first = register(hosted, "m", model_dir())
    event = hosted.set_alias("m", "staging", 1, reason="try")
    assert recorder.registered == [first]
    assert recorder.committed_when_called == [True]
    assert recorder.changed == [event]


def test_no_hooks_for_a_rolled_back_transaction(
    hosted: ModelRegistry, recorder: Recorder, model_dir, monkeypatch: pytest.MonkeyPatch
) -> None:
    from registry.model_registry.artifacts import StagedArtifact

    register(hosted, "m", model_dir(), pr_auc=0.5)
    register(hosted, "m", model_dir(), pr_auc=0.1)
    hosted.set_alias("m", "production", 1, reason="first", token=PROMOTER_TOKEN)
    recorder.registered.clear()
    recorder.changed.clear()

    with pytest.raises(PromotionRefused):
        hosted.set_alias("m", "production", 2, reason="worse", token=PROMOTER_TOKEN)
    monkeypatch.setattr(StagedArtifact, "publish", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        register(hosted, "m", model_dir())
    assert recorder.registered == [] and recorder.changed == []


def test_plugin_vetoes_are_collected_and_named(
    hosted: ModelRegistry, recorder: Recorder, host_pm: Any, model_dir
) -> None:
    register(hosted, "m", model_dir(), pr_auc=0.5)
    register(hosted, "m", model_dir(), pr_auc=0.1)
    _promote(hosted, 1)
    assert recorder.checked == [(1, None)]  # the first promotion is checked too, with no current holder

    recorder.veto = ["calibration drifted", "bias audit missing"]
    with pytest.raises(PromotionRefused) as refused:
        _promote(hosted, 2)
    assert refused.value.reasons[1:] == [
        "plugin 'recorder': calibration drifted",
        "plugin 'recorder': bias audit missing",
    ]
    assert recorder.checked[-1] == (2, 1)

    recorder.veto = None
    host_pm.add(Broken(), "broken")
    with pytest.raises(PromotionRefused, match="plugin 'broken': check_promotion raised RuntimeError"):
        hosted.set_alias("m", "production", 2, reason="x", token=PROMOTER_TOKEN)
    # unprotected aliases are not checked
    hosted.set_alias("m", "staging", 2, reason="x")
    assert recorder.checked[-1] == (2, 1)


def test_a_failing_lifecycle_hook_is_logged_not_raised(
    hosted: ModelRegistry, host_pm: Any, model_dir, caplog: pytest.LogCaptureFixture
) -> None:
    host_pm.add(Broken(), "broken")
    register(hosted, "m", model_dir())
    with caplog.at_level(logging.ERROR, logger="shopscore.plugins"):
        event = hosted.set_alias("m", "staging", 1, reason="x")
    assert hosted.resolve("m", "staging").version == event.to_version == 1
    assert "plugin 'broken' failed in on_alias_changed" in caplog.text
