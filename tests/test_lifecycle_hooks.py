"""The registry calls plugins' lifecycle hooks after a commit and their promotion checks before a move."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from registry_support import register, write_model_dir

from registry import hookimpl
from registry.model_registry import migrate
from registry.model_registry.errors import PromotionRefused
from registry.model_registry.promotion import PromotionPolicy
from registry.model_registry.records import AliasEvent, ModelVersion
from registry.model_registry.store import ModelRegistry
from registry.plugin_host import PluginHost


class Audit:
    """A plugin that records what it was told and vetoes versions whose test PR-AUC is below the holder's."""

    def __init__(self) -> None:
        self.registered: list[ModelVersion] = []
        self.moves: list[AliasEvent] = []

    @hookimpl
    def on_model_registered(self, version: ModelVersion) -> None:
        self.registered.append(version)

    @hookimpl
    def on_alias_changed(self, event: AliasEvent) -> None:
        self.moves.append(event)

    @hookimpl
    def check_promotion(self, candidate: ModelVersion, current: ModelVersion | None) -> str | None:
        if current is not None and candidate.metrics["test_pr_auc"] < current.metrics["test_pr_auc"]:
            return f"PR-AUC {candidate.metrics['test_pr_auc']} is below v{current.version}'s"
        return None


class Broken:
    @hookimpl
    def on_model_registered(self, version: ModelVersion) -> None:
        raise RuntimeError("webhook down")


@pytest.fixture
def audited(tmp_path: Path) -> tuple[ModelRegistry, Audit]:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    migrate.upgrade(url)
    pm = PluginHost()
    audit = Audit()
    pm.add(audit, "audit")
    pm.add(Broken(), "broken")
    policy = PromotionPolicy(protected_aliases=frozenset({"production"}), promoter_token=None)
    registry = ModelRegistry.open(
        url, artifacts_root=tmp_path / "artifacts", policy=policy, plugins=pm, role="promoter"
    )
    yield registry, audit
    registry.close()


def test_on_model_registered_sees_the_committed_version_and_a_failure_is_only_logged(
    audited, tmp_path, caplog
):
    registry, audit = audited
    with caplog.at_level(logging.ERROR, logger="shopscore.plugins"):
        v1 = register(registry, "purchase", write_model_dir(tmp_path / "m1"), pr_auc=0.5)
    assert audit.registered == [v1]
    assert registry.get_version("purchase", 1).version == 1  # the broken plugin did not undo it
    assert "plugin 'broken' failed in on_model_registered" in caplog.text


def test_on_alias_changed_and_check_promotion(audited, tmp_path):
    registry, audit = audited
    v1 = register(registry, "purchase", write_model_dir(tmp_path / "m1", seed=1), pr_auc=0.5)
    v2 = register(registry, "purchase", write_model_dir(tmp_path / "m2", seed=2), pr_auc=0.4)
    first = registry.set_alias("purchase", "production", v1.version, reason="first", actor="ann")
    assert audit.moves == [first] and first.to_version == 1 and first.from_version is None
    with pytest.raises(PromotionRefused, match=r"(?s)plugin 'audit': PR-AUC 0.4 is below v1's.*--force"):
        registry.set_alias("purchase", "production", v2.version, reason="try", actor="ann")
    assert registry.resolve("purchase", "production").version == 1 and len(audit.moves) == 1
    forced = registry.set_alias(
        "purchase", "production", v2.version, reason="hotfix", actor="ann", force=True
    )
    assert audit.moves[-1] == forced and forced.forced
