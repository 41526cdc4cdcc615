"""The `shopscore` command line: a thin layer over registry.jobs, the registry and score()."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from registry.db.cli import db_group, models_group
from registry.settings import Settings

if TYPE_CHECKING:
    from registry.scoring import Score


def _settings() -> Settings:
    return Settings.from_env()


def _echo_json(payload: Any) -> None:
    click.echo(json.dumps(payload, indent=None, default=str, sort_keys=True))


@contextmanager
def step(title: str) -> Iterator[None]:
    """Print a step's name and, when it ends, how long it took (stderr, so --json output stays clean)."""
    click.echo(f"==> {title}", err=True)
    started = time.perf_counter()
    yield
    click.echo(f"    done in {time.perf_counter() - started:.1f}s", err=True)


@click.group()
@click.version_option(package_name="shopscore")
def main() -> None:
    """shopscore: shop events -> Feast features -> PyTorch models in a SQL registry -> score(user_id)."""


# --- events ---------------------------------------------------------------------------------------------
@main.group()
def events() -> None:
    """Create canonical shop events in $SHOPSCORE_HOME/events/."""


@events.command("generate")
@click.option("--users", default=3000, show_default=True, help="Number of synthetic users.")
@click.option("--days", default=90, show_default=True, help="Days of history.")
@click.option("--seed", default=7, show_default=True, help="Random seed (same seed, same events).")
@click.option("--start", default=None, help="First day (YYYY-MM-DD); default: DAYS before today.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def events_generate(users: int, days: int, seed: int, start: str | None, as_json: bool) -> None:
    """Generate seeded synthetic shop events with a learnable purchase signal."""
    from registry import jobs

    settings = _settings()
    frame = jobs.generate(settings, users=users, days=days, seed=seed, start=start)
    summary = {
        "events": len(frame),
        "users": int(frame["user_id"].nunique()),
        "by_event_type": {k: int(v) for k, v in frame["event_type"].value_counts().sort_index().items()},
        "out": str(settings.events_dir),
    }
    _echo_json(summary) if as_json else click.echo(
        f"wrote {summary['events']:,} events of {summary['users']:,} users to {summary['out']}"
    )


@events.command("push")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def events_push(file: Path, as_json: bool) -> None:
    """Push a CSV/parquet FILE of canonical events to the online `user_realtime` view (at once)."""
    from registry.events.schema import EventSchemaError
    from registry.features.push import push_events, read_event_file

    try:
        result = push_events(_settings(), read_event_file(file))
    except (EventSchemaError, ValueError, FileNotFoundError) as exc:
        raise click.BadParameter(str(exc), param_hint="FILE") from None
    if as_json:
        _echo_json(asdict(result))
        return
    late = f", {result.users_skipped:,} skipped (older than their online state)" * bool(result.users_skipped)
    click.echo(f"pushed {result.events:,} events: {result.users_pushed:,} users updated online{late}")


# --- features -------------------------------------------------------------------------------------------
@main.group()
def features() -> None:
    """Build per-user feature snapshots and load them into Feast."""


@features.command("build")
@click.option(
    "--grain", type=click.Choice(["1d", "6h", "1h"]), default="1d", show_default=True, help="Snapshot step."
)
def features_build(grain: str) -> None:
    """Compute per-user snapshots and sequences (parquet the Feast sources read)."""
    from registry import jobs

    path = jobs.build_features(_settings(), grain=grain)
    click.echo(f"wrote {path.parent}/ (user_features, user_sequences, user_realtime .parquet)")


@features.command("apply")
def features_apply() -> None:
    """Register the feature repo's declarations with Feast (`feast apply`)."""
    from registry import jobs

    names = jobs.apply_features(_settings())
    click.echo(f"applied {len(names)} Feast objects: {', '.join(names)}")


@features.command("materialize")
@click.option(
    "--start",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    default=None,
    help="UTC start for views never materialized (first run or backfill); default: their oldest row.",
)
def features_materialize(start: datetime | None) -> None:
    """Load the newest snapshots into the online store (incremental after the first run)."""
    from registry import jobs

    jobs.materialize_features(_settings(), start=start.replace(tzinfo=UTC) if start else None)
    click.echo("materialized")


# --- train ----------------------------------------------------------------------------------------------
class JsonObject(click.ParamType):
    """A JSON object given on the command line, e.g. '{"hidden": [32]}'."""

    name = "JSON"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> dict:
        if isinstance(value, dict):
            return value
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            self.fail(f"{value!r} is not valid JSON ({exc.msg}); quote it, e.g. '{{\"hidden\": [32]}}'")
        if not isinstance(parsed, dict):
            self.fail(f"{value!r} must be a JSON object ({{...}}), not {type(parsed).__name__}")
        return parsed


@main.command("train")
@click.option("--model", "model_name", default="purchase", show_default=True, help="Registered model name.")
@click.option(
    "--encoder",
    "encoders",
    multiple=True,
    default=("mlp",),
    show_default=True,
    help="Encoder plugin name; repeat it (--encoder mlp --encoder other) to concatenate several.",
)
@click.option(
    "--encoder-config",
    type=JsonObject(),
    default=None,
    help="Encoder options as JSON, e.g. '{\"hidden\": [32]}'; with several encoders, keyed by encoder "
    'name: \'{"sequence": {"d_model": 32}}\'.',
)
@click.option(
    "--head",
    default="purchase",
    show_default=True,
    help="Head plugin name (purchase, spend, next_category, or a plugin's).",
)
@click.option("--head-config", type=JsonObject(), default=None, help="Head options as JSON.")
@click.option("--feature-service", default="purchase_v1", show_default=True)
@click.option("--horizon-days", default=7, show_default=True, help="The label looks this many days ahead.")
@click.option(
    "--train-cutoffs", default=None, help="Comma-separated dates; default: weekly, derived from data."
)
@click.option("--valid-cutoff", default=None)
@click.option("--test-cutoff", default=None)
@click.option("--epochs", default=40, show_default=True)
@click.option("--seed", default=0, show_default=True)
def train(
    model_name: str,
    encoders: tuple[str, ...],
    encoder_config: dict | None,
    head: str,
    head_config: dict | None,
    feature_service: str,
    horizon_days: int,
    train_cutoffs: str | None,
    valid_cutoff: str | None,
    test_cutoff: str | None,
    epochs: int,
    seed: int,
) -> None:
    """Train on a point-in-time training set, evaluate on held-out users, register a new version."""
    from registry import jobs
    from registry.training import Splits, TrainConfig

    settings = _settings()
    given = [train_cutoffs, valid_cutoff, test_cutoff]
    if any(given) and not all(given):
        raise click.UsageError("give all of --train-cutoffs, --valid-cutoff and --test-cutoff, or none")
    splits = (
        Splits.of(train_cutoffs.split(","), valid_cutoff, test_cutoff, horizon_days) if all(given) else None
    )
    spec = jobs.TrainSpec(
        model_name=model_name,
        encoder=encoders[0] if len(encoders) == 1 else list(encoders),
        encoder_config=encoder_config,
        head=head,
        head_config=head_config,
        feature_service=feature_service,
        horizon_days=horizon_days,
        splits=splits,
        train=TrainConfig(epochs=epochs, seed=seed, device=settings.device),
    )
    version = jobs.train(settings, spec)
    _echo_json({"model": version.model, "version": version.version, "metrics": version.metrics})


# --- score ----------------------------------------------------------------------------------------------
@main.command("score")
@click.argument("user_ids", nargs=-1, required=True)
@click.option("--model", default="purchase", show_default=True)
@click.option("--alias", default="production", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per user.")
def score_command(user_ids: tuple[str, ...], model: str, alias: str, as_json: bool) -> None:
    """Score users with the model version ALIAS points to."""
    from registry.scoring import InvalidUserId, Scorer

    scorer = Scorer(_settings())
    try:
        scores = scorer.score_many(list(user_ids), model=model, alias=alias)
    except InvalidUserId as exc:
        raise click.BadParameter(str(exc), param_hint="USER_IDS") from None
    for s in scores:
        if as_json:
            _echo_json(s.to_dict())
        else:
            if s.cold_start:
                known = "unknown user (cold start)"
            else:
                known = f"features {s.feature_age_seconds / 3600:.1f}h old" + (", stale" if s.stale else "")
            click.echo(f"user {s.user_id}: {_answer_text(s)}  [{s.model} v{s.version} @{s.alias}, {known}]")


def _answer_text(s: Score) -> str:
    if s.top_categories is not None:
        return "next category " + ", ".join(f"{c.category} {c.probability:.2f}" for c in s.top_categories)
    if s.expected_spend is not None:
        return f"expected spend = {s.expected_spend:.2f}"
    return f"p = {s.probability:.3f}"


# --- plugins --------------------------------------------------------------------------------------------
@main.command("plugins")
@click.option("--json", "as_json", is_flag=True)
def plugins_command(as_json: bool) -> None:
    """List loaded plugins, their packages, hooks, and the encoders and heads they registered."""
    from registry.plugin_host import load_plugins

    host = load_plugins()
    listing = []
    for name, plugin in host.pm.list_name_plugin():
        package, version = host.packages.get(name, (None, None))
        listing.append(
            {
                "name": name,
                "package": package,
                "version": version,
                "hooks": sorted(h.name for h in host.pm.get_hookcallers(plugin) or []),
                "encoders": sorted(k for k, r in host.encoders.items() if r.plugin == name),
                "heads": sorted(k for k, r in host.heads.items() if r.plugin == name),
            }
        )
    if as_json:
        _echo_json(listing)
    else:
        for p in listing:
            click.echo(
                f"{p['name']} ({p['package']} {p['version']}): encoders={p['encoders']} heads={p['heads']}"
            )


# --- model registry: `shopscore db ...` and `shopscore models ...` -----------------------------------
main.add_command(db_group)
main.add_command(models_group)


# --- demo -----------------------------------------------------------------------------------------------
@main.command("demo")
@click.option("--users", default=3000, show_default=True)
@click.option("--days", default=90, show_default=True)
@click.option("--seed", default=7, show_default=True)
def demo(users: int, days: int, seed: int) -> None:
    """Run the whole flow on embedded defaults: events -> features -> Feast -> train -> register -> promote -> score."""
    from registry.demo import run_demo

    run_demo(
        _settings(),
        users=users,
        days=days,
        seed=seed,
        step=step,
        echo=click.echo,
        run_cli=lambda args: main.main(args, standalone_mode=False),
    )


# --- serve (HTTP API) -----------------------------------------------------------------------------------
@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1), help="uvicorn processes.")
@click.option(
    "--serving-config",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="YAML with per-model traffic split and shadow alias (default: $SHOPSCORE_SERVING_CONFIG).",
)
@click.option("--log-level", default="warning", show_default=True)
def serve(host: str, port: int, workers: int, serving_config: str | None, log_level: str) -> None:
    """Serve score(user_id), online features and alias moves over HTTP (FastAPI + uvicorn)."""
    import os

    import uvicorn

    if serving_config:
        os.environ["SHOPSCORE_SERVING_CONFIG"] = serving_config  # read by each worker's app factory
    # The factory string (not an app object) lets uvicorn start several worker processes.
    uvicorn.run(
        "registry.serving.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
    )
