"""The `shopscore` command line: a thin layer over registry.jobs, the registry and score()."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from registry import progress
from registry.db.cli import db_group, models_group
from registry.errors import debug_enabled, user_message
from registry.events.importers import FORMATS
from registry.settings import Settings

if TYPE_CHECKING:
    from registry.scoring import Score


def _settings() -> Settings:
    return Settings.from_env()


def _echo_json(payload: Any) -> None:
    click.echo(json.dumps(payload, indent=None, default=str, sort_keys=True))


class ShopscoreGroup(click.Group):
    """The root group: every error a user can fix ends the command with one `Error: ...` line.

    Usage errors (a bad option or argument) exit with 2, everything else with 1. An exception that
    `registry.errors.user_message` does not know is a bug: it is named in one line too, and SHOPSCORE_DEBUG=1
    shows the full traceback for any error.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if debug_enabled():
                raise
            message = user_message(exc)
            if message is None:
                message = (
                    f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())} (a bug in shopscore or a "
                    f"plugin; rerun with SHOPSCORE_DEBUG=1 for the traceback and report it)"
                )
            raise click.ClickException(message) from exc

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            # Not standalone, click returns the exit code of ctx.exit() / --help instead of exiting.
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as exc:
            if debug_enabled():
                raise
            where = exc.ctx.command_path if exc.ctx else self.name
            click.echo(f"Error: {exc.format_message().rstrip('.')}; see `{where} --help`", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Error: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=ShopscoreGroup, name="shopscore")
@click.version_option(package_name="shopscore")
def main() -> None:
    """shopscore: shop events -> Feast features -> PyTorch models in a SQL registry -> score(user_id).

    Errors print one line; set SHOPSCORE_DEBUG=1 to see the traceback.
    """
    progress.show_progress()


# --- events ---------------------------------------------------------------------------------------------
@main.group()
def events() -> None:
    """Create canonical shop events in $SHOPSCORE_HOME/events/."""


@events.command("generate")
@click.option("--users", default=3000, show_default=True, help="Number of synthetic users.")
@click.option("--days", default=90, show_default=True, help="Days of history.")
@click.option("--seed", default=7, show_default=True, help="Random seed (same seed, same events).")
@click.option("--start", default=None, help="First day (YYYY-MM-DD); default: DAYS before today.")
@click.option(
    "--order-effect/--no-order-effect",
    default=True,
    show_default=True,
    help="Ablation: --no-order-effect drops the purchases a search->cart sequence triggers.",
)
@click.option(
    "--query-signal/--no-query-signal",
    default=True,
    show_default=True,
    help="Ablation: --no-query-signal detaches query wording from purchase intent.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def events_generate(
    users: int,
    days: int,
    seed: int,
    start: str | None,
    order_effect: bool,
    query_signal: bool,
    as_json: bool,
) -> None:
    """Generate seeded synthetic shop events with a learnable purchase signal."""
    from registry import jobs

    settings = _settings()
    frame = jobs.generate(
        settings,
        users=users,
        days=days,
        seed=seed,
        start=start,
        order_effect=order_effect,
        query_signal=query_signal,
    )
    summary = {
        "events": len(frame),
        "users": int(frame["user_id"].nunique()),
        "by_event_type": {k: int(v) for k, v in frame["event_type"].value_counts().sort_index().items()},
        "out": str(settings.events_dir),
    }
    _echo_json(summary) if as_json else click.echo(
        f"wrote {summary['events']:,} events of {summary['users']:,} users to {summary['out']}"
    )


@events.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "-f",
    "fmt",
    type=click.Choice(FORMATS),
    required=True,
    help="Source layout: a public data set's, or csv with --map for your own columns.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Events directory [default: $SHOPSCORE_HOME/events].",
)
@click.option(
    "--map", "maps", multiple=True, metavar="COL=SRC", help="csv: canonical column = source column."
)
@click.option(
    "--event-map", "event_maps", multiple=True, metavar="SRC=TYPE", help="csv: source value = event type."
)
@click.option("--sep", default=",", show_default=True, help="csv: field separator.")
@click.option("--chunk-rows", default=200_000, show_default=True, type=click.IntRange(min=1))
@click.option("--drop-duplicates", is_flag=True, help="Skip exact repeats of an event from the same file.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON line.")
def events_import(
    path: Path,
    fmt: str,
    out_dir: Path | None,
    maps: tuple[str, ...],
    event_maps: tuple[str, ...],
    sep: str,
    chunk_rows: int,
    drop_duplicates: bool,
    as_json: bool,
) -> None:
    """Import a raw event file (REES46, RetailRocket, Taobao, DIGINETICA, CDNOW or your csv/parquet) into
    the canonical event table; bad rows are quarantined with a reason, and the counts reconcile."""
    from registry.events.importers import import_events

    summary = import_events(
        path,
        fmt,
        out_dir or _settings().events_dir,
        mapping=_pairs(maps, "--map", "COL", "SRC") or None,
        event_map=_pairs(event_maps, "--event-map", "SRC", "TYPE") or None,
        chunk_rows=chunk_rows,
        sep=sep,
        drop_duplicates=drop_duplicates,
    )
    click.echo(summary.to_json() if as_json else summary.describe())


def _pairs(values: tuple[str, ...], option: str, left: str, right: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, sep_, target = value.partition("=")
        if not sep_ or not key.strip() or not target.strip():
            raise click.BadParameter(f"expected {left}={right}, got {value!r}", param_hint=option)
        pairs[key.strip()] = target.strip()
    return pairs


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
    help="UTC start: reload every view from then on [default: views rebuilt since their last load are "
    "reloaded from their oldest row, the others continue incrementally].",
)
def features_materialize(start: datetime | None) -> None:
    """Load the newest feature values into the online store (rebuilt snapshots are reloaded in full)."""
    from registry import jobs

    reloaded = jobs.materialize_features(_settings(), start=start.replace(tzinfo=UTC) if start else None)
    click.echo(
        f"materialized: {len(reloaded)} views loaded in full ({', '.join(reloaded)})"
        if reloaded
        else "materialized: every view was up to date with its snapshots; newer rows loaded incrementally"
    )


@features.command("fields")
@click.option("--service", default=None, help="Only this FeatureService.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: service -> its fields.")
def features_fields(service: str | None, as_json: bool) -> None:
    """What each FeatureService gives an encoder: fields, types, views and TTLs, meanings (sentinels, nulls)."""
    from dataclasses import asdict

    from registry.features.fields import NULLS, feature_fields, markdown

    fields = feature_fields(_settings().feature_repo)
    if service is not None:
        if service not in fields:
            raise click.BadParameter(f"no feature service {service!r}; choose one of {sorted(fields)}")
        fields = {service: fields[service]}
    if as_json:
        _echo_json({name: [asdict(f) for f in rows] for name, rows in fields.items()})
        return
    click.echo(markdown(fields))
    click.echo(f"Every field may be {NULLS}.")


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
@click.option(
    "--feature-service",
    default=None,
    help="Feast FeatureService the model reads [default: purchase_v1, or purchase_lifetime_v1 when the "
    "events are all purchases].",
)
@click.option(
    "--horizon-days",
    type=click.IntRange(min=1),
    default=None,
    help="The label looks this many days ahead [default: the shortest of 7/14/30/60/90 in which at least "
    "10% of users buy].",
)
@click.option(
    "--train-cutoffs",
    default=None,
    help="Comma-separated dates [default: up to 12, spread over the events' span].",
)
@click.option("--valid-cutoff", default=None, help="Date [default: one horizon before the test cutoff].")
@click.option("--test-cutoff", default=None, help="Date [default: one horizon before the last event].")
@click.option("--epochs", default=40, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Learning rate [default: 3e-3]."
)
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Rows per step [default: 256].")
@click.option(
    "--patience",
    type=click.IntRange(min=1),
    default=None,
    help="Stop after this many epochs without a better validation loss [default: 5].",
)
@click.option("--seed", default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the new version as one JSON object.")
def train(
    model_name: str,
    encoders: tuple[str, ...],
    encoder_config: dict | None,
    head: str,
    head_config: dict | None,
    feature_service: str | None,
    horizon_days: int | None,
    train_cutoffs: str | None,
    valid_cutoff: str | None,
    test_cutoff: str | None,
    epochs: int,
    lr: float | None,
    batch_size: int | None,
    patience: int | None,
    seed: int,
    as_json: bool,
) -> None:
    """Train on a point-in-time training set, evaluate on held-out users, register a new version.

    With no options, the feature service, horizon and cutoffs are chosen from the events (printed)."""
    from registry import jobs
    from registry.training import Splits, TrainConfig

    settings = _settings()
    splits = None
    if train_cutoffs or test_cutoff or valid_cutoff:
        if not (train_cutoffs and test_cutoff):
            raise click.UsageError("--train-cutoffs and --test-cutoff go together (--valid-cutoff optional)")
        splits = Splits.of(
            [c.strip() for c in train_cutoffs.split(",")], valid_cutoff, test_cutoff, horizon_days or 7
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
        train=TrainConfig(
            epochs=epochs,
            seed=seed,
            device=settings.device,
            **{
                k: v
                for k, v in {"lr": lr, "batch_size": batch_size, "patience": patience}.items()
                if v is not None
            },
        ),
    )
    version = jobs.train(settings, spec)
    if as_json:
        _echo_json(
            {
                "model": version.model,
                "version": version.version,
                "feature_service": version.feature_service,
                "horizon_days": version.horizon_days,
                "task": version.lineage.get("task"),
                "metrics": version.metrics,
                "artifact_uri": version.artifact_uri,
            }
        )
        return
    task = version.lineage.get("task") or {}
    click.echo(f"registered {version.model} v{version.version}: {_headline(version.metrics, task)}")
    click.echo(
        f"  answers {task.get('answer')} ({task.get('answer_type')}), reads {version.feature_service}, "
        f"predicts {version.horizon_days} days ahead"
    )
    click.echo(f"  artifact {version.artifact_uri}")
    click.echo(
        f"  next: shopscore models promote {version.model} {version.version} --alias production "
        f'--reason "..." --token $SHOPSCORE_PROMOTER_TOKEN'
    )


def _headline(metrics: dict[str, float], task: dict[str, Any]) -> str:
    """The test metrics a user reads first: the head's headline metrics, and the base rate of a binary one."""
    shown = [*task.get("headline", []), "base_rate"]
    values = [f"{k} {metrics[f'test_{k}']:.3f}" for k in shown if f"test_{k}" in metrics]
    return "test " + ", ".join(values) + " on held-out users" if values else "no test metrics"


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
    """E.g. `probability = 0.412`, `expected_spend = 35.20`, `top_categories shoes 0.41, bags 0.22`."""
    if isinstance(s.value, tuple):
        return f"{s.answer} " + ", ".join(f"{c.category} {c.probability:.2f}" for c in s.value)
    return f"{s.answer} = {s.value:.3f}" if abs(s.value) < 10 else f"{s.answer} = {s.value:,.2f}"


# --- report ---------------------------------------------------------------------------------------------
@main.command("report")
@click.argument("model")
@click.argument("version")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory for index.html and its PNGs [default: $SHOPSCORE_HOME/reports/MODEL-vVERSION].",
)
@click.option("--alias", default="production", show_default=True, help="Compare with the version holding it.")
@click.option("--json", "as_json", is_flag=True, help="Print the written paths as JSON.")
def report_command(model: str, version: str, out: Path | None, alias: str, as_json: bool) -> None:
    """Write an HTML report on VERSION (a number or an alias) of MODEL: curves, training, lineage, metrics."""
    from registry.db.errors import InvalidInput, RegistryError, UnknownAlias, UnknownModel, UnknownVersion
    from registry.db.store import ModelRegistry
    from registry.report import write_report

    settings = _settings()
    try:
        with ModelRegistry.open(settings=settings) as registry:
            try:
                number = int(version) if version.isdigit() else registry.resolve(model, version).version
                record = registry.get_version(model, number)
            except UnknownModel as exc:
                raise click.BadParameter(str(exc), param_hint="MODEL") from None
            except (UnknownVersion, UnknownAlias, InvalidInput) as exc:
                raise click.BadParameter(str(exc), param_hint="VERSION") from None
            target = out or settings.home / "reports" / f"{model}-v{record.version}"
            written = write_report(registry, record, target, alias=alias)
    except (RegistryError, ImportError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        _echo_json(
            {
                "html": str(written.html),
                "images": [str(p) for p in written.images],
                "notes": list(written.notes),
            }
        )
        return
    for note in written.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"wrote {written.html} ({len(written.images)} images)")


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
                "options": {
                    k: _options(r.cls.config_class)
                    for k, r in sorted({**host.encoders, **host.heads}.items())
                    if r.plugin == name
                },
            }
        )
    if as_json:
        _echo_json(listing)
    else:
        for p in listing:
            click.echo(
                f"{p['name']} ({p['package']} {p['version']}): encoders={p['encoders']} heads={p['heads']}"
            )
            for part, options in p["options"].items():
                click.echo(f"  {part} options: " + (", ".join(f"{k}={v}" for k, v in options.items()) or "-"))


def _options(config_class: type) -> dict[str, Any]:
    """A part's config fields and their defaults (None: required, or set by training)."""
    from dataclasses import MISSING, fields

    def default(f: Any) -> Any:
        if f.default is not MISSING:
            return f.default
        return f.default_factory() if f.default_factory is not MISSING else None

    return {f.name: default(f) for f in fields(config_class) if not f.metadata.get("artifact_only")}


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
