"""Real shop data through the `shopscore` CLI only, as a newcomer types it, with the defaults they get.

A slice of CDNOW (the customers with the lowest ids; bench/perf/cli_cdnow.py runs the whole file the same way)
goes import -> features build -> apply -> materialize -> train -> promote -> score -> report. Every user
mistake along the way must end in one `Error: ...` line that names the fix.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner, Result
from sklearn.metrics import roc_auc_score

from registry.cli import main
from registry.model_registry.store import ModelRegistry
from registry.modeling.training import EVALUATION_FILE
from registry.settings import Settings

CDNOW = Path(__file__).resolve().parents[2] / "shared" / "data" / "cdnow" / "CDNOW_master.txt"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CDNOW.is_file(), reason=f"CDNOW data not at {CDNOW} (the shared data checkout)"),
]
CUSTOMERS = 4000  # ids 1..4000: 12,787 orders over the full 18 months
TOKEN = "s3cret-promoter"


def shopscore(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def one_error_line(result: Result, exit_code: int, *needles: str) -> str:
    """Assert the command failed with one `Error: ...` line, the last, holding every needle; return it.
    (Progress lines may come before it on stderr.)"""
    assert result.exit_code == exit_code, result.output
    lines = result.output.strip().splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    assert errors == lines[-1:] and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace holding the CDNOW slice, imported, built, applied and materialized through the CLI."""
    home = tmp_path_factory.mktemp("cdnow_cli")
    raw = pd.read_csv(CDNOW, sep=r"\s+", dtype=str)
    source = home / "cdnow_slice.txt"
    raw[raw["customer_id"].astype(int) <= CUSTOMERS].to_csv(source, sep=" ", index=False)
    mp = pytest.MonkeyPatch()
    mp.setenv("SHOPSCORE_HOME", str(home))
    mp.setenv("SHOPSCORE_PROMOTER_TOKEN", TOKEN)
    for variable in ("SHOPSCORE_DATABASE_URL", "SHOPSCORE_FEAST_PROFILE", "SHOPSCORE_PROTECTED_ALIASES"):
        mp.delenv(variable, raising=False)
    imported = shopscore("events", "import", str(source), "--format", "cdnow", "--json")
    assert imported.exit_code == 0, imported.output
    summary = json.loads(imported.stdout)
    assert (summary["written"], summary["quarantined"]) == (12_787, 0)
    for step in (["features", "build"], ["features", "apply"], ["features", "materialize"]):
        result = shopscore(*step)
        assert result.exit_code == 0, result.output
    yield home
    mp.undo()


def test_cdnow_trains_promotes_scores_and_reports_with_the_defaults(workspace: Path) -> None:
    trained = shopscore("train", "--json")
    assert trained.exit_code == 0, trained.output
    # The defaults are chosen from the data and said out loud (on stderr, so --json stays parseable).
    assert "feature service purchase_lifetime_v1 (the events are all purchases" in trained.stderr
    assert "horizon 60 days" in trained.stderr and "epoch 1/40" in trained.stderr
    version = json.loads(trained.stdout)
    assert (version["version"], version["feature_service"], version["horizon_days"]) == (
        1,
        "purchase_lifetime_v1",
        60,
    )

    # The held-out ROC-AUC, recomputed from the evaluation outputs stored with the version.
    with ModelRegistry.open(settings=Settings.from_env()) as registry:
        record, path = registry.fetch("purchase", 1)
    outputs = pd.read_parquet(Path(path) / EVALUATION_FILE)
    test = outputs[outputs["split"] == "test"]
    auc = roc_auc_score(test["label"], test["score"])
    assert auc > 0.75 and auc == pytest.approx(record.metrics["test_roc_auc"], abs=1e-9)

    refused = shopscore("models", "promote", "purchase", "1", "--alias", "production", "--reason", "first")
    one_error_line(refused, 1, "protected", "--token")
    promoted = shopscore(
        "models", "promote", "purchase", "1", "--alias", "production", "--reason", "first", "--token", TOKEN
    )
    assert promoted.exit_code == 0, promoted.output

    scored = shopscore("score", "1", "2", "3", "--json")
    assert scored.exit_code == 0, scored.output
    answers = [json.loads(line) for line in scored.stdout.splitlines()]
    assert [a["user_id"] for a in answers] == [1, 2, 3]
    assert all(a["version"] == 1 and 0 < a["probability"] < 1 for a in answers)

    reported = shopscore("report", "purchase", "production", "--json")
    assert reported.exit_code == 0, reported.output
    assert Path(json.loads(reported.stdout)["html"]).is_file()


@pytest.mark.parametrize(
    ("args", "exit_code", "needles"),
    [
        (["train", "--epochs", "abc"], 2, ["'abc' is not a valid integer", "`shopscore train --help`"]),
        (["train", "--encoder", "nope"], 1, ["no encoder named 'nope'", "shopscore plugins"]),
        (["train", "--head", "nope"], 1, ["no head named 'nope'", "shopscore plugins"]),
        (["train", "--feature-service", "nope"], 1, ["no feature service named 'nope'", "purchase_v1"]),
        (["train", "--horizon-days", "400"], 1, ["too short for a 400-day horizon", "--horizon-days"]),
        (
            ["train", "--encoder-config", '{"hidden": "wide"}'],
            1,
            ["encoder 'mlp' (plugin 'mlp'", "could not be built", "--encoder-config"],
        ),
        (["score", "1", "--model", "nope"], 1, ["no registered model named 'nope'", "models list"]),
        (["score", "1", "--alias", "nope"], 1, ["has no alias 'nope'", "models promote"]),
        (["score", "1e5"], 2, ["not an integer"]),
        (["models", "show", "purchase", "99999999999999999999"], 1, ["invalid version", "models show"]),
        (["events", "import", "/no/such/file.csv", "--format", "cdnow"], 2, ["does not exist"]),
    ],
)
def test_user_mistakes_end_in_one_error_line(
    workspace: Path, args: list[str], exit_code: int, needles: list[str]
) -> None:
    one_error_line(shopscore(*args), exit_code, *needles)


def test_train_refuses_a_grid_it_cannot_hold_and_names_the_fix(workspace: Path) -> None:
    result = shopscore("train", env={"SHOPSCORE_TRAIN_MEMORY_GB": "0.001"})
    one_error_line(result, 1, "the training set would be", "GiB", "--train-cutoffs")


def test_train_checks_the_registry_before_it_trains(workspace: Path, tmp_path: Path) -> None:
    down = shopscore("train", env={"SHOPSCORE_DATABASE_URL": "postgresql://shopscore@127.0.0.1:1/none"})
    one_error_line(down, 1, "cannot open the model registry database", "SHOPSCORE_DATABASE_URL")
    empty = tmp_path / "empty.db"
    empty.touch()
    old = shopscore("train", env={"SHOPSCORE_DATABASE_URL": f"sqlite:///{empty}"})
    one_error_line(old, 1, "shopscore db upgrade")


def test_unreachable_redis_is_one_line(workspace: Path, tmp_path: Path) -> None:
    env = {
        "SHOPSCORE_FEAST_PROFILE": "redis",
        "SHOPSCORE_REDIS": "127.0.0.1:1",
        "SHOPSCORE_FEAST_REGISTRY_URL": f"sqlite:///{tmp_path / 'feast_registry.db'}",
    }
    applied = shopscore("features", "apply", env=env)  # Feast's Redis store connects on the first write
    assert applied.exit_code == 0, applied.output
    materialized = shopscore("features", "materialize", env=env)
    one_error_line(materialized, 1, "cannot reach the Redis online store", "SHOPSCORE_FEAST_PROFILE")


def test_debug_shows_the_traceback(workspace: Path) -> None:
    result = shopscore("train", "--encoder", "nope", env={"SHOPSCORE_DEBUG": "1"})
    assert result.exit_code == 1 and "no encoder named 'nope'" in str(result.exception)
    assert type(result.exception).__name__ == "PluginError"
