"""`shopscore demo`: every arrow of the data flow once, on embedded defaults, in a few minutes."""

from __future__ import annotations

from collections.abc import Callable

from registry import flow as jobs
from registry.model_registry.errors import PromotionRefused
from registry.model_registry.store import ModelRegistry
from registry.progress import stage
from registry.settings import Settings

DEMO_USERS_SCORED = 5


def run_demo(
    settings: Settings,
    *,
    users: int,
    days: int,
    seed: int,
    echo: Callable[[str], None],
    run_cli: Callable[[list[str]], None],
) -> None:
    echo(f"shopscore demo in {settings.home}")
    with stage(f"generate synthetic events: {users} users x {days} days (seed {seed})"):
        events = jobs.generate(settings, users=users, days=days, seed=seed)
        echo(f"    {len(events):,} events, {events['event_type'].value_counts().to_dict()}")
    with stage("build daily user feature snapshots"):
        path = jobs.build_features(settings)
        echo(f"    {path}")
    with stage("feast apply + materialize to the online store"):
        jobs.apply_features(settings)
        jobs.materialize_features(settings)
    with stage("upgrade the model registry schema (alembic)"):
        # The demo is trusted automation: it may move the protected `production` alias (docs/registry.md).
        registry = ModelRegistry.open(settings=settings, upgrade=True, role="promoter")
    version = jobs.train(settings, jobs.TrainSpec())  # its stages log themselves
    m = version.metrics
    echo(
        f"    registered purchase v{version.version}: test ROC-AUC {m['test_roc_auc']:.3f}, "
        f"PR-AUC {m['test_pr_auc']:.3f} (base rate {m['test_base_rate']:.3f}) on held-out users"
    )
    with stage(f"move alias production -> v{version.version}"):
        try:
            registry.set_alias(
                "purchase", "production", version.version, reason="shopscore demo", actor="demo"
            )
        except PromotionRefused as refused:
            # A rerun on another day trains on other synthetic days, and its metrics can land a few
            # hundredths lower: the gate doing its job, not a failure of the demo.
            holder = registry.resolve("purchase", "production").version
            echo(f"    production stays on v{holder}: the promotion check refused v{version.version}:")
            for reason in refused.reasons:
                echo(f"      {reason}")

    # The last two steps are the CLI itself, so the demo shows exactly what a user would type and see.
    recent = events.drop_duplicates("user_id", keep="last").tail(DEMO_USERS_SCORED)["user_id"]
    for args in (["models", "list"], ["models", "show", "purchase"], ["score", *map(str, recent)]):
        echo(f"\n$ shopscore {' '.join(args)}")
        run_cli(args)
