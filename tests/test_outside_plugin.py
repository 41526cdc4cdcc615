"""A real outside plugin package (tests/outside_plugin) installed beside shopscore, with no change to core:
found through its own entry point, trained, registered, promoted and scored; and refused, with the package
named, once it is gone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from registry.artifacts import fetch_artifact
from registry.db.store import ModelRegistry
from registry.modeling import ShopModel
from registry.plugin_host import PluginError, load_plugins
from registry.settings import Settings

pytestmark = pytest.mark.slow

SOURCE = Path(__file__).parent / "outside_plugin"

# Runs in a fresh interpreter whose sys.path includes the plugin's install directory, as a team's
# environment would after `pip install shopscore-acme`.
SCRIPT = textwrap.dedent(
    """
    import json, sys
    from click.testing import CliRunner
    from registry import jobs
    from registry.cli import main
    from registry.db.store import ModelRegistry
    from registry.scoring import Scorer
    from registry.settings import Settings
    from registry.training import TrainConfig

    settings = Settings.from_env()
    listing = json.loads(CliRunner().invoke(main, ["plugins", "--json"]).output)
    events = jobs.generate(settings, users=400, days=42, seed=5, start="2024-01-01")
    jobs.build_features(settings)
    jobs.apply_features(settings)
    jobs.materialize_features(settings)
    registry = ModelRegistry.open(settings=settings, upgrade=True, role="promoter")
    spec = jobs.TrainSpec(
        model_name="high_spender",
        encoder="bag",
        head="high_spender",
        head_config={"min_spend": 30.0},
        train=TrainConfig(epochs=5, progress=False),
    )
    version = jobs.train(settings, spec)
    registry.set_alias("high_spender", "production", version.version, reason="acme plugin test", actor="test")
    user = int(events.iloc[-1]["user_id"])
    score = Scorer(settings).score(user, model="high_spender")
    print(json.dumps({"plugins": listing, "version": version.to_dict(), "score": score.to_dict()}))
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


def test_outside_plugin_trains_registers_promotes_and_scores(plugin_dir: Path, tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPSCORE_")}
    env.update(PYTHONPATH=str(plugin_dir), SHOPSCORE_HOME=str(tmp_path / "home"), SHOPSCORE_DEVICE="cpu")
    run = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])

    acme = next(p for p in result["plugins"] if p["name"] == "acme")
    assert acme["package"] == "shopscore-acme" and acme["version"] == "0.3.0"
    assert acme["encoders"] == ["bag"] and acme["heads"] == ["high_spender"]
    assert acme["hooks"] == ["register_encoders", "register_heads"]

    version = result["version"]
    assert version["lineage"]["encoder"] == "bag" and version["lineage"]["head"] == "high_spender"
    assert version["lineage"]["plugins"]["head"]["package"] == "shopscore-acme"
    assert 0 < version["metrics"]["test_base_rate"] < 1
    score = result["score"]
    assert score["model"] == "high_spender" and score["version"] == version["version"]
    assert 0.0 < score["probability"] < 1.0

    # This process never had the plugin: loading its model must name the package to install.
    settings = Settings.from_env(home=tmp_path / "home")
    with ModelRegistry.open(settings=settings) as registry:
        stored = registry.resolve("high_spender", "production")
        directory = fetch_artifact(stored.artifact_uri, stored.sha256)
    with pytest.raises(PluginError, match=r"encoder 'bag' from plugin 'acme'.*pip install shopscore-acme"):
        ShopModel.from_pretrained(directory, host=load_plugins())
