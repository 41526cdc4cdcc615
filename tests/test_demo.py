"""`shopscore demo` runs the whole flow, and running it twice adds a version and loses nothing."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from registry.cli import main
from registry.model_registry.store import ModelRegistry
from registry.settings import Settings

pytestmark = pytest.mark.slow


def test_demo_twice_adds_a_version_and_keeps_the_first(settings: Settings):
    runner = CliRunner()
    args = ["demo", "--users", "800", "--days", "45"]
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "$ shopscore models list" in first.output and "production=v1" in first.output
    second = runner.invoke(main, args)
    assert second.exit_code == 0, second.output
    registry = ModelRegistry.open(settings=settings)
    versions = registry.versions("purchase")
    assert [v.version for v in versions] == [1, 2]
    assert registry.resolve("purchase", "production").version == 2
    # Nothing stored is lost: v1's artifact still loads and verifies, and both moves are in the audit log.
    registry.fetch("purchase", 1)
    assert [(e.from_version, e.to_version) for e in registry.alias_events("purchase")] == [(None, 1), (1, 2)]
    # The demo ends by scoring 5 users through the CLI.
    assert second.output.count("[purchase v2 @production") == 5


def test_demo_keeps_production_and_says_why_when_the_gate_refuses(settings: Settings):
    runner = CliRunner()
    args = ["demo", "--users", "800", "--days", "45"]
    assert runner.invoke(main, args).exit_code == 0
    # A holder no rerun can match: v1's own artifact registered with a perfect PR-AUC, then promoted.
    registry = ModelRegistry.open(settings=settings, role="promoter")
    v1, path = registry.fetch("purchase", 1)
    best = registry.register_version(
        "purchase", path, lineage=v1.lineage, metrics={**v1.metrics, "test_pr_auc": 1.0}, params=v1.params
    )
    registry.set_alias("purchase", "production", best.version, reason="test", actor="test")
    rerun = runner.invoke(main, args)
    assert rerun.exit_code == 0, rerun.output
    assert f"production stays on v{best.version}: the promotion check refused v3" in rerun.output
    assert "test_pr_auc of version 3" in rerun.output
    assert rerun.output.count(f"[purchase v{best.version} @production") == 5
    assert registry.resolve("purchase", "production").version == best.version
