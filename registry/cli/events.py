"""`shopscore events generate|import|push`: create canonical shop events, or push them to the online store."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from registry.cli.common import (
    echo_json,
    load_settings,
)
from registry.events.importers import FORMATS


@click.group()
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
    from registry import flow as jobs

    settings = load_settings()
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
    echo_json(summary) if as_json else click.echo(
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
        out_dir or load_settings().events_dir,
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
        result = push_events(load_settings(), read_event_file(file))
    except (EventSchemaError, ValueError, FileNotFoundError) as exc:
        raise click.BadParameter(str(exc), param_hint="FILE") from None
    if as_json:
        echo_json(asdict(result))
        return
    late = f", {result.users_skipped:,} skipped (older than their online state)" * bool(result.users_skipped)
    click.echo(f"pushed {result.events:,} events: {result.users_pushed:,} users updated online{late}")
