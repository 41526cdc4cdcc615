"""`shopscore demo` runs the whole flow, and running it twice adds a version and loses nothing."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from registry.cli import main
from registry.db.store import ModelRegistry
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
