"""The whole of CDNOW through the `shopscore` CLI with a newcomer's defaults: time and peak memory per step.

Each step runs as its own `shopscore` process in a fresh workspace (bench/.work/cli_cdnow), exactly as the
README's "Your own shop's data" section types it; the held-out ROC-AUC is recomputed from the evaluation
outputs stored with the registered version. tests/test_cli_real_data.py runs the same flow on a slice.

    .venv/bin/python -m bench.perf.cli_cdnow [--data ../shared/data/cdnow/CDNOW_master.txt]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from sklearn.metrics import roc_auc_score

from bench.common import CDNOW_DATA, WORK_ROOT
from registry.model_registry.store import ModelRegistry
from registry.modeling.training import EVALUATION_FILE
from registry.settings import Settings

WORK = WORK_ROOT / "cli_cdnow"
SHOPSCORE = str(Path(sys.executable).with_name("shopscore"))
TOKEN = "bench-token"


def run(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run `shopscore ARGS`; return (seconds, peak RSS in MiB of that process, stdout)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen([SHOPSCORE, *args], env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # the child's own rusage, unlike getrusage(CHILDREN)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status):
            raise SystemExit(f"shopscore {' '.join(args)} failed:\n{err.read().decode()}")
        return seconds, usage.ru_maxrss / 1024, out.read().decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=CDNOW_DATA)
    args = parser.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    env = {**os.environ, "SHOPSCORE_HOME": str(WORK), "SHOPSCORE_PROMOTER_TOKEN": TOKEN}
    for variable in ("SHOPSCORE_DATABASE_URL", "SHOPSCORE_FEAST_PROFILE"):
        env.pop(variable, None)
    steps = [
        ["events", "import", str(args.data), "--format", "cdnow", "--json"],
        ["features", "build"],
        ["features", "apply"],
        ["features", "materialize"],
        ["train", "--json"],
        [
            "models",
            "promote",
            "purchase",
            "1",
            "--alias",
            "production",
            "--reason",
            "bench",
            "--token",
            TOKEN,
        ],
        ["score", "1", "2", "3", "--json"],
        ["report", "purchase", "production"],
    ]
    rows, trained = [], {}
    for step in steps:
        seconds, rss, out = run(step, env)
        rows.append(
            (" ".join(step[:2]) if step[0] in ("events", "features", "models") else step[0], seconds, rss)
        )
        if step[0] == "train":
            trained = json.loads(out)
    with ModelRegistry.open(settings=Settings.from_env(WORK)) as registry:
        _, path = registry.fetch("purchase", trained["version"])
    outputs = pd.read_parquet(Path(path) / EVALUATION_FILE)
    test = outputs[outputs["split"] == "test"]
    print("| step | seconds | peak RSS MiB |\n| --- | ---: | ---: |")
    for name, seconds, rss in rows:
        print(f"| {name} | {seconds:.1f} | {rss:,.0f} |")
    print(f"| total | {sum(r[1] for r in rows):.1f} | {max(r[2] for r in rows):,.0f} |")
    print(
        f"\nfeature service {trained['feature_service']}, horizon {trained['horizon_days']} days; held-out test "
        f"rows {len(test):,}, ROC-AUC {roc_auc_score(test['label'], test['score']):.3f} (recomputed), "
        f"PR-AUC {trained['metrics']['test_pr_auc']:.3f}, base rate {trained['metrics']['test_base_rate']:.3f}"
    )


if __name__ == "__main__":
    main()
