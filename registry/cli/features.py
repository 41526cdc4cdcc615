"""`shopscore features build|apply|materialize|fields`: the feature tables, Feast, and the field contract."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime

import click

from registry.cli.common import (
    echo_json,
    load_settings,
)
from registry.features.contract import GRAINS


@click.group()
def features() -> None:
    """Build per-user feature snapshots and load them into Feast."""


@features.command("build")
@click.option(
    "--grain", type=click.Choice(list(GRAINS)), default="1d", show_default=True, help="Snapshot step."
)
def features_build(grain: str) -> None:
    """Compute per-user snapshots and sequences (parquet the Feast sources read)."""
    from registry import flow as jobs

    path = jobs.build_features(load_settings(), grain=grain)
    click.echo(f"wrote {path.parent}/ (user_features, user_sequences, user_realtime .parquet)")


@features.command("apply")
def features_apply() -> None:
    """Register the feature repo's declarations with Feast (`feast apply`)."""
    from registry import flow as jobs

    names = jobs.apply_features(load_settings())
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
    from registry import flow as jobs

    reloaded = jobs.materialize_features(load_settings(), start=start.replace(tzinfo=UTC) if start else None)
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

    from registry.features.fields import NULLS, feature_fields, markdown

    fields = feature_fields(load_settings().feature_repo)
    if service is not None:
        if service not in fields:
            raise click.BadParameter(f"no feature service {service!r}; choose one of {sorted(fields)}")
        fields = {service: fields[service]}
    if as_json:
        echo_json({name: [asdict(f) for f in rows] for name, rows in fields.items()})
        return
    click.echo(markdown(fields))
    click.echo(f"Every field may be {NULLS}.")
