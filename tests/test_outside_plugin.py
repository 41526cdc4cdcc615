"""A real outside plugin package (tests/outside_plugin) installed beside shopscore, with no change to core.

Its `churn` head brings its own label and its `expected_orders` head its own answer type; both go through the
CLI (train, promote, vetoed by the plugin's own check, score, report), Python and HTTP, in processes that find
the package through its entry point. Once the package is gone, loading its model names it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from registry.model_registry.artifacts import fetch_artifact
from registry.model_registry.store import ModelRegistry
from registry.modeling.shop_model import ShopModel
from registry.plugin_host import PluginError, load_plugins
from registry.report import binary_curves, read_outputs
from registry.settings import Settings

pytestmark = pytest.mark.slow

SOURCE = Path(__file__).parent / "outside_plugin"

# Python and HTTP, in a process that has the plugin: the answers are the heads' own, and the OpenAPI schema
# lists them because the heads are installed.
PYTHON_AND_HTTP = textwrap.dedent(
    """
    import json, sys
    from fastapi.testclient import TestClient
    from registry.scoring import Scorer
    from registry.serving.app import create_app
    from registry.settings import Settings

    user = int(sys.argv[1])
    scorer = Scorer(Settings.from_env())
    python = {m: scorer.score(user, model=m).to_dict() for m in ("churn", "orders")}
    with TestClient(create_app(ready_model="churn")) as client:
        http = {m: client.get(f"/v1/score/{user}", params={"model": m}).json() for m in ("churn", "orders")}
        schema = client.get("/openapi.json").json()["components"]["schemas"]["ScoreOut"]
    print(json.dumps({"python": python, "http": http, "schema": schema}))
    """
)


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/outside_plugin installed with the running interpreter's pip into a directory of its own."""
    tmp = tmp_path_factory.mktemp("acme")
    source = shutil.copytree(SOURCE, tmp / "src")  # the build writes build/ and *.egg-info next to the source
    target = tmp / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return target


def test_outside_heads_own_their_label_and_answer_through_cli_python_and_http(
    plugin_dir: Path, tmp_path: Path
):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPSCORE_")}
    env.update(
        PYTHONPATH=str(plugin_dir),
        SHOPSCORE_HOME=str(home),
        SHOPSCORE_DEVICE="cpu",
        SHOPSCORE_PROMOTER_TOKEN="acme-token",
    )
    shopscore = Path(sys.executable).with_name("shopscore")

    def cli(*args: str, ok: bool = True, **extra_env: str) -> subprocess.CompletedProcess:
        run = subprocess.run(
            [str(shopscore), *args], env={**env, **extra_env}, capture_output=True, text=True, timeout=300
        )
        assert (run.returncode == 0) == ok, (
            f"shopscore {' '.join(args)}: {run.stdout[-2000:]}{run.stderr[-2000:]}"
        )
        return run

    listing = {p["name"]: p for p in json.loads(cli("plugins", "--json").stdout)}
    assert listing["acme"]["package"] == "shopscore-acme" and listing["acme"]["version"] == "0.4.0"
    assert listing["acme"]["heads"] == ["churn", "expected_orders"]

    cli("events", "generate", "--users", "400", "--days", "42", "--seed", "5", "--start", "2024-01-01")
    for step in ("build", "apply", "materialize"):
        cli("features", step)
    versions = {
        model: json.loads(
            cli(
                "train", "--model", model, "--encoder", "bag", "--head", head, "--epochs", "5", "--json"
            ).stdout
        )
        for model, head in (("churn", "churn"), ("orders", "expected_orders"))
    }
    churn, orders = versions["churn"], versions["orders"]
    assert churn["task"] == {
        "label": "label_churn",
        "answer": "churn_probability",
        "answer_type": "probability",
        "evaluation": "binary",
        "headline": ["roc_auc", "pr_auc", "log_loss"],
        "promotion_metric": "test_pr_auc",
        "greater_is_better": True,
    }
    assert 0.5 < churn["metrics"]["test_base_rate"] < 1  # most users buy nothing in a week: churn is common
    assert orders["task"]["answer_type"] == "count" and "test_mae" in orders["metrics"]

    # The plugin's own promotion check vetoes through the CLI, named; with its floor met, the move happens.
    vetoed = cli(
        "models", "promote", "churn", "1", "--alias", "production", "--reason", "try", "--token", "acme-token",
        ok=False, ACME_MIN_TEST_ROC_AUC="0.9999",
    )  # fmt: skip
    assert "plugin 'acme': test ROC-AUC" in vetoed.stderr and "Acme's floor of 0.9999" in vetoed.stderr
    for model in ("churn", "orders"):
        cli(
            "models",
            "promote",
            model,
            "1",
            "--alias",
            "production",
            "--reason",
            "acme",
            "--token",
            "acme-token",
        )

    user = "1"
    text = cli("score", user, "--model", "churn").stdout
    assert text.startswith(f"user {user}: churn_probability = ")
    scored = json.loads(cli("score", user, "--model", "orders", "--json").stdout)
    assert scored["answer"] == "expected_orders" and scored["value"] == scored["expected_orders"] >= 0
    assert "probability" not in scored

    # The report draws the head's own target: its ROC-AUC is the registered one.
    report = json.loads(cli("report", "churn", "1", "--out", str(tmp_path / "report"), "--json").stdout)
    page = Path(report["html"]).read_text()
    assert "roc.png" in page and "baseline: base rate" in page
    with ModelRegistry.open(settings=Settings.from_env(home=home)) as registry:
        record, artifact = registry.fetch("churn", 1)
    test_rows = read_outputs(artifact).query("split == 'test'")
    drawn = binary_curves(test_rows["target"].to_numpy(), test_rows["score"].to_numpy()).roc_auc
    assert drawn == pytest.approx(record.metrics["test_roc_auc"], abs=1e-9)

    run = subprocess.run(
        [sys.executable, "-c", PYTHON_AND_HTTP, user], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    for surface in ("python", "http"):
        assert out[surface]["churn"]["answer"] == "churn_probability"
        assert 0 < out[surface]["churn"]["churn_probability"] < 1
        assert out[surface]["orders"]["expected_orders"] == pytest.approx(scored["value"], rel=1e-5)
    assert {"churn_probability", "expected_orders", "probability"} <= set(out["schema"]["properties"])
    answers = out["schema"]["properties"]["answer"]["enum"]
    assert {"churn_probability", "expected_orders", "expected_spend", "top_categories"} <= set(answers)

    # This process never had the plugin: loading its model must name the package to install.
    with ModelRegistry.open(settings=Settings.from_env(home=home)) as registry:
        stored = registry.resolve("churn", "production")
        directory = fetch_artifact(stored.artifact_uri, stored.sha256)
    with pytest.raises(PluginError, match=r"encoder 'bag' from plugin 'acme'.*pip install shopscore-acme"):
        ShopModel.from_pretrained(directory, host=load_plugins())
