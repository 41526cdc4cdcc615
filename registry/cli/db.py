"""`shopscore db upgrade|current|check`: create and migrate the model registry database."""

from __future__ import annotations

import click

from registry.cli.common import (
    database_options,
    emit,
    resolve_url,
)
from registry.model_registry import migrate
from registry.model_registry.engine import database_exists, display_url


@click.group("db")
def db_group() -> None:
    """Create and migrate the model registry database."""


@db_group.command("upgrade")
@click.option("--revision", default="heads", show_default=True, help="Target revision.")
@database_options
def db_upgrade(url: str | None, as_json: bool, revision: str) -> None:
    """Create the registry schema or migrate it to the newest revision."""
    url = resolve_url(url)
    before = migrate.current(url) if database_exists(url) else None
    after = migrate.upgrade(url, revision)
    where = display_url(url)
    emit(
        as_json,
        {"url": where, "from": before, "to": after},
        f"{where}: {before or 'empty'} -> {after}" if before != after else f"{where}: already at {after}",
    )


@db_group.command("current")
@database_options
def db_current(url: str | None, as_json: bool) -> None:
    """Print the revision the database is at."""
    url = resolve_url(url)
    at = migrate.current(url) if database_exists(url) else None
    heads = migrate.SCHEMA_HEAD
    emit(
        as_json,
        {"url": display_url(url), "current": at, "head": heads},
        f"{at or f'none (run `{migrate.UPGRADE_COMMAND}`)'} (head: {heads})",
    )


@db_group.command("check")
@database_options
def db_check(url: str | None, as_json: bool) -> None:
    """Exit 0 when the schema is current, 1 (with the fix) when it is not."""
    url = resolve_url(url)
    at = migrate.current(url) if database_exists(url) else None
    ok = at == migrate.SCHEMA_HEAD
    message = (
        "schema is current" if ok else f"schema is not current (at {at}); run `{migrate.UPGRADE_COMMAND}`"
    )
    emit(
        as_json,
        {"url": display_url(url), "current": at, "head": migrate.SCHEMA_HEAD, "ok": ok},
        message,
    )
    if not ok:
        raise click.exceptions.Exit(1)
