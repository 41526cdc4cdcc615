"""`shopscore demo`: every arrow of the data flow once, on embedded defaults, in a few minutes."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import pandas as pd

from registry import jobs
from registry.db.store import ModelRegistry
from registry.scoring import Scorer
from registry.settings import Settings

DEMO_USERS_SCORED = 5


def run_demo(
    settings: Settings,
    *,
    users: int,
    days: int,
    seed: int,
    step: Callable[[str], AbstractContextManager[None]],
    echo: Callable[[str], None],
) -> None:
    echo(f"shopscore demo in {settings.home}")
    with step(f"generate synthetic events: {users} users x {days} days (seed {seed})"):
        events = jobs.generate(settings, users=users, days=days, seed=seed)
        echo(f"    {len(events):,} events, {events['event_type'].value_counts().to_dict()}")
    with step("build daily user feature snapshots"):
        path = jobs.build_features(settings)
        echo(f"    {path}")
    with step("feast apply + materialize to the online store"):
        jobs.apply_features(settings)
        jobs.materialize_features(settings)
    with step("upgrade the model registry schema (alembic)"):
        # The demo is trusted automation: it may move the protected `production` alias (docs/registry.md).
        registry = ModelRegistry.open(settings=settings, upgrade=True, role="promoter")
    with step("train mlp encoder + purchase head on a point-in-time training set"):
        version = jobs.train(settings, jobs.TrainSpec())
        m = version.metrics
        echo(
            f"    registered purchase v{version.version}: test ROC-AUC {m['test_roc_auc']:.3f}, "
            f"PR-AUC {m['test_pr_auc']:.3f} (base rate {m['test_base_rate']:.3f}) on held-out users"
        )
    with step(f"move alias production -> v{version.version}"):
        registry.set_alias("purchase", "production", version.version, reason="shopscore demo", actor="demo")

    echo("\n$ shopscore models list")
    for model in registry.models():
        echo(f"  {model}")
    for v in registry.versions("purchase"):
        aliases = ",".join(v.aliases) or "-"
        echo(
            f"  purchase v{v.version}  aliases={aliases}  test_roc_auc={v.metrics.get('test_roc_auc', float('nan')):.3f}"
            f"  created={v.created_at:%Y-%m-%d %H:%M}"
        )

    scorer = Scorer(settings)
    active = events.sort_values("event_time").drop_duplicates("user_id", keep="last")
    sample = pd.concat([active.head(DEMO_USERS_SCORED - 1), active.tail(1)])["user_id"].tolist()
    echo(f"\n$ shopscore score {' '.join(map(str, sample))}")
    for s in scorer.score_many(sample):
        age = f"{s.feature_age_seconds / 3600:.1f}h" if s.feature_age_seconds is not None else "n/a"
        flags = " cold-start" if s.cold_start else ""
        echo(f"  user {s.user_id:>6}: p(purchase in 7d) = {s.probability:.3f}  [purchase v{s.version}, features {age} old]{flags}")
