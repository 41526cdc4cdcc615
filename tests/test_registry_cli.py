"""`shopscore models ...` through click's CliRunner on the group object: text and --json output, and
errors that exit 1 with the registry's message."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from registry_support import PROMOTER_TOKEN, register

from registry.cli import main
from registry.model_registry.store import ModelRegistry

pytest_plugins = ["registry_fixtures"]

# The CLI is a thin adapter: run it on SQLite; the store tests cover PostgreSQL.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"])
TOKEN = ("--token", PROMOTER_TOKEN)


@pytest.fixture
def cli(
    registry: ModelRegistry,
    registry_url: str,
    artifacts_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    model_dir,
) -> Iterator[Any]:
    """Invoke `models ...` against a registry holding m v1 (0.5), v2 (0.6), v3 (0.1)."""
    from registry.plugin_host import default_host

    for pr_auc in (0.5, 0.6, 0.1):
        register(registry, "m", model_dir(), pr_auc=pr_auc)
    monkeypatch.setenv("SHOPSCORE_DATABASE_URL", registry_url)
    monkeypatch.setenv("SHOPSCORE_ARTIFACTS_DIR", str(artifacts_root))
    monkeypatch.setenv("SHOPSCORE_PROMOTER_TOKEN", PROMOTER_TOKEN)
    monkeypatch.setenv("SHOPSCORE_LOAD_PLUGINS", "")  # the CLI loads the plugin host: none installed here
    default_host.cache_clear()
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(main, ["models", *args], catch_exceptions=False)

    yield invoke
    default_host.cache_clear()


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_list_and_show(cli: Any) -> None:
    assert _json(cli("list", "--json"))[0] | {"created_at": None} == {
        "name": "m",
        "created_at": None,
        "latest_version": 3,
        "version_count": 3,
        "aliases": {},
    }
    listed = cli("list")
    assert listed.output.split("\n")[1].split() == ["m", "3", "3"]

    table = cli("show", "m").output
    assert table.startswith("VERSION") and "purchase_mlp_v1" in table and "0.6000" in table
    shown = _json(cli("show", "m", "2", "--json"))
    assert (shown["version"], shown["metrics"]["test_pr_auc"], shown["lineage"]["horizon_days"]) == (
        2,
        0.6,
        7,
    )
    assert "sha256:" in cli("show", "m", "2").output


def test_promote_rollback_log(cli: Any) -> None:
    refused = cli("promote", "m", "1", "--alias", "production", "--reason", "first")
    assert refused.exit_code == 1 and "is protected" in refused.output

    promoted = cli(
        "promote", "m", "2", "--alias", "production", "--reason", "first", "--token", PROMOTER_TOKEN
    )
    assert promoted.exit_code == 0 and promoted.output.strip() == "m@production: (unset) -> v2"

    vetoed = cli("promote", "m", "3", "--alias", "production", "--reason", "x", "--token", PROMOTER_TOKEN)
    assert (
        vetoed.exit_code == 1 and "refused" in vetoed.output and "test_pr_auc of version 3" in vetoed.output
    )

    forced = cli(
        "promote",
        "m",
        "3",
        "--alias",
        "production",
        "--reason",
        "hotfix",
        "--force",
        *TOKEN,
        "--actor",
        "oncall",
    )
    assert forced.output.strip() == "m@production: v2 -> v3 (forced)"

    back = _json(cli("rollback", "m", "--alias", "production", "--reason", "bad", *TOKEN, "--json"))
    assert (back["from_version"], back["to_version"], back["action"]) == (3, 2, "rollback")

    # a version may be named by alias: promote whatever production holds to staging
    assert cli("promote", "m", "production", "--alias", "staging", "--reason", "mirror").exit_code == 0
    assert cli("show", "m", "staging", "--json").output.count('"version": 2') == 1

    log = _json(cli("log", "m", "--json"))
    assert [(e["alias"], e["to_version"], e["forced"]) for e in log] == [
        ("production", 2, False),
        ("production", 3, True),
        ("production", 2, False),
        ("staging", 2, False),
    ]
    text = cli("log", "m", "--alias", "production").output
    assert "set forced" in text and "oncall" in text and "rollback" in text


def test_compare_archive_gc_and_errors(cli: Any) -> None:
    compared = cli("compare", "m", "1", "2")
    assert "test_pr_auc" in compared.output and "+0.1000" in compared.output
    as_json = _json(cli("compare", "m", "1", "2", "--json"))
    assert as_json["metrics"][0]["delta"] == pytest.approx(0.1)

    assert cli("promote", "m", "1", "--alias", "staging", "--reason", "x").exit_code == 0
    in_use = cli("archive", "m", "1")
    assert in_use.exit_code == 1 and "still the target of alias(es) staging" in in_use.output
    assert _json(cli("archive", "m", "2", "--json"))["status"] == "archived"

    assert _json(cli("gc", "--json")) == {"removed": []}

    missing = cli("show", "nope")
    assert missing.exit_code == 1 and "no registered model named 'nope'" in missing.output
    assert "has no version 9" in cli("show", "m", "9").output
