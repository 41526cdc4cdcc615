"""`shopscore db ...` and `shopscore models ...`: thin click adapters over `registry.db`.

The two groups are attached to the main `shopscore` group elsewhere (`registry.cli`); they also work alone
(`click.testing.CliRunner().invoke(models_group, [...])`). Every command takes `--json` for machine-readable
output and `--database-url` (default: $SHOPSCORE_DATABASE_URL, else the workspace's SQLite file).
Registry errors print one clear message and exit with status 1.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from registry.db import migrate
from registry.db.engine import database_exists, display_url
from registry.db.errors import RegistryError
from registry.db.records import Comparison, ModelVersion
from registry.db.store import ModelRegistry
from registry.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


def _common(func: F) -> F:
    """--database-url and --json on every command."""
    func = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(func)
    func = click.option(
        "--database-url",
        "url",
        envvar="SHOPSCORE_DATABASE_URL",
        default=None,
        help="Registry database URL [default: $SHOPSCORE_DATABASE_URL, else $SHOPSCORE_HOME/registry.db].",
    )(func)
    return func


def _resolve_url(url: str | None) -> str:
    return url or Settings.from_env().database_url


def _errors(func: F) -> F:
    """Turn registry errors into a one-line click error with exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RegistryError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper  # type: ignore[return-value]


@contextmanager
def _registry(url: str | None, **kwargs: Any) -> Iterator[ModelRegistry]:
    registry = ModelRegistry.open(_resolve_url(url), **kwargs)
    try:
        yield registry
    finally:
        registry.close()


def _emit(as_json: bool, payload: Any, text: str | Callable[[], str]) -> None:
    if as_json:
        click.echo(json.dumps(payload, indent=2, sort_keys=False, default=str))
    else:
        click.echo(text() if callable(text) else text)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def _version_ref(registry: ModelRegistry, model: str, ref: str) -> int:
    """A version number, or the number an alias points at (`show m production`, `promote m staging ...`)."""
    return int(ref) if ref.isdigit() else registry.resolve(model, ref).version


# ------------------------------------------------------------------------------------------------- db


@click.group("db")
def db_group() -> None:
    """Create and migrate the model registry database."""


@db_group.command("upgrade")
@click.option("--revision", default="heads", show_default=True, help="Target revision.")
@_common
@_errors
def db_upgrade(url: str | None, as_json: bool, revision: str) -> None:
    """Create the registry schema or migrate it to the newest revision."""
    url = _resolve_url(url)
    before = migrate.current(url) if database_exists(url) else None
    after = migrate.upgrade(url, revision)
    where = display_url(url)
    _emit(
        as_json,
        {"url": where, "from": before, "to": after},
        f"{where}: {before or 'empty'} -> {after}" if before != after else f"{where}: already at {after}",
    )


@db_group.command("current")
@_common
@_errors
def db_current(url: str | None, as_json: bool) -> None:
    """Print the revision the database is at."""
    url = _resolve_url(url)
    at = migrate.current(url) if database_exists(url) else None
    heads = migrate.SCHEMA_HEAD
    _emit(
        as_json,
        {"url": display_url(url), "current": at, "head": heads},
        f"{at or f'none (run `{migrate.UPGRADE_COMMAND}`)'} (head: {heads})",
    )


@db_group.command("check")
@_common
@_errors
def db_check(url: str | None, as_json: bool) -> None:
    """Exit 0 when the schema is current, 1 (with the fix) when it is not."""
    url = _resolve_url(url)
    at = migrate.current(url) if database_exists(url) else None
    ok = at == migrate.SCHEMA_HEAD
    message = (
        "schema is current" if ok else f"schema is not current (at {at}); run `{migrate.UPGRADE_COMMAND}`"
    )
    _emit(
        as_json,
        {"url": display_url(url), "current": at, "head": migrate.SCHEMA_HEAD, "ok": ok},
        message,
    )
    if not ok:
        raise click.exceptions.Exit(1)


# --------------------------------------------------------------------------------------------- models


@click.group("models")
def models_group() -> None:
    """List, inspect, promote and roll back registered model versions."""


@models_group.command("list")
@_common
@_errors
def models_list(url: str | None, as_json: bool) -> None:
    """Registered models with their latest version and aliases."""
    with _registry(url) as registry:
        found = registry.models()
    rows = [
        (m.name, m.latest_version, m.version_count, ", ".join(f"{a}=v{v}" for a, v in m.aliases.items()))
        for m in found
    ]
    _emit(
        as_json,
        [m.to_dict() for m in found],
        lambda: _table(("MODEL", "LATEST", "VERSIONS", "ALIASES"), rows) if rows else "no registered models",
    )


@models_group.command("show")
@click.argument("model")
@click.argument("version", required=False)
@_common
@_errors
def models_show(url: str | None, as_json: bool, model: str, version: str | None) -> None:
    """All versions of MODEL, or one VERSION (a number or an alias) in detail."""
    with _registry(url) as registry:
        if version is None:
            found = registry.versions(model)
            _emit(as_json, [v.to_dict() for v in found], lambda: _versions_table(found))
            return
        record = registry.get_version(model, _version_ref(registry, model, version))
    _emit(as_json, record.to_dict(), lambda: _version_text(record))


def _versions_table(found: list[ModelVersion]) -> str:
    rows = [
        (
            v.version,
            v.status,
            ", ".join(v.aliases),
            _promotion_metric(v),
            v.feature_service,
            v.horizon_days,
            v.created_at.strftime("%Y-%m-%d %H:%M"),
            v.created_by,
        )
        for v in found
    ]
    headers = (
        "VERSION",
        "STATUS",
        "ALIASES",
        "PROMOTION METRIC",
        "FEATURE_SERVICE",
        "HORIZON",
        "CREATED",
        "BY",
    )
    return _table(headers, rows)


def _was(version: int | None) -> str:
    return "(unset)" if version is None else f"v{version}"


def _promotion_metric(v: ModelVersion) -> str:
    """E.g. `test_pr_auc 0.4120`: the metric promotion compares for this version's head."""
    name = (v.lineage.get("task") or {}).get("promotion_metric", "test_pr_auc")
    return f"{name} {_fmt(v.metrics.get(name))}"


def _version_text(v: ModelVersion) -> str:
    lines = [
        f"model:        {v.model}",
        f"version:      {v.version}",
        f"status:       {v.status}",
        f"aliases:      {', '.join(v.aliases) or '-'}",
        f"artifact:     {v.artifact_uri}",
        f"sha256:       {v.sha256}",
        f"created:      {v.created_at.isoformat()} by {v.created_by or '-'}",
        "metrics:",
        *(f"  {k}: {_fmt(val)}" for k, val in v.metrics.items()),
        "params:",
        *(f"  {k}: {json.dumps(val)}" for k, val in v.params.items()),
        "lineage:",
        *(f"  {k}: {json.dumps(val)}" for k, val in v.lineage.items()),
    ]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "-" if value is None else str(value)


@models_group.command("promote")
@click.argument("model")
@click.argument("version")
@click.option("--alias", required=True, help="Alias to move, e.g. production.")
@click.option("--reason", required=True, help="Why; recorded in the audit log.")
@click.option("--force", is_flag=True, help="Override vetoes of the promotion checks (audited as forced).")
@click.option("--actor", default=None, help="Who is promoting [default: $SHOPSCORE_ACTOR or login name].")
@click.option("--token", default=None, help="Promoter token, needed for protected aliases.")
@_common
@_errors
def models_promote(
    url: str | None,
    as_json: bool,
    model: str,
    version: str,
    alias: str,
    reason: str,
    force: bool,
    actor: str | None,
    token: str | None,
) -> None:
    """Point ALIAS of MODEL at VERSION (a number or another alias)."""
    with _registry(url) as registry:
        number = _version_ref(registry, model, version)
        event = registry.set_alias(model, alias, number, reason=reason, actor=actor, force=force, token=token)
    forced = " (forced)" if event.forced else ""
    _emit(
        as_json,
        event.to_dict(),
        f"{model}@{alias}: {_was(event.from_version)} -> v{event.to_version}{forced}",
    )


@models_group.command("rollback")
@click.argument("model")
@click.option("--alias", required=True, help="Alias to move back.")
@click.option("--reason", required=True, help="Why; recorded in the audit log.")
@click.option("--actor", default=None, help="Who is rolling back [default: $SHOPSCORE_ACTOR or login name].")
@click.option("--token", default=None, help="Promoter token, needed for protected aliases.")
@_common
@_errors
def models_rollback(
    url: str | None, as_json: bool, model: str, alias: str, reason: str, actor: str | None, token: str | None
) -> None:
    """Move ALIAS back to the version it held before its last move."""
    with _registry(url) as registry:
        event = registry.rollback(model, alias, reason=reason, actor=actor, token=token)
    _emit(
        as_json, event.to_dict(), f"{model}@{alias}: v{event.from_version} -> v{event.to_version} (rollback)"
    )


@models_group.command("log")
@click.argument("model")
@click.option("--alias", default=None, help="Only this alias.")
@_common
@_errors
def models_log(url: str | None, as_json: bool, model: str, alias: str | None) -> None:
    """The audit log of MODEL's alias moves, oldest first."""
    with _registry(url) as registry:
        events = registry.alias_events(model, alias)
    rows = [
        (
            e.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            e.alias,
            f"v{e.from_version}" if e.from_version else "-",
            f"v{e.to_version}",
            e.action + (" forced" if e.forced else ""),
            e.actor,
            e.reason,
        )
        for e in events
    ]
    _emit(
        as_json,
        [e.to_dict() for e in events],
        lambda: (
            _table(("TIME (UTC)", "ALIAS", "FROM", "TO", "ACTION", "ACTOR", "REASON"), rows)
            if rows
            else f"no alias moves for {model}"
        ),
    )


@models_group.command("compare")
@click.argument("model")
@click.argument("v1")
@click.argument("v2")
@click.option(
    "--all", "show_all", is_flag=True, help="Also show params and lineage keys that did not change."
)
@_common
@_errors
def models_compare(url: str | None, as_json: bool, model: str, v1: str, v2: str, show_all: bool) -> None:
    """Metrics, params and lineage of two versions (numbers or aliases) side by side."""
    with _registry(url) as registry:
        comparison = registry.compare(
            model, _version_ref(registry, model, v1), _version_ref(registry, model, v2)
        )
    _emit(as_json, comparison.to_dict(), lambda: _comparison_text(comparison, show_all))


def _comparison_text(c: Comparison, show_all: bool) -> str:
    parts = []
    for title, diffs, always in (
        ("metrics", c.metrics, True),
        ("params", c.params, show_all),
        ("lineage", c.lineage, show_all),
    ):
        shown = [d for d in diffs if always or d.changed]
        if not shown:
            parts.append(f"{title}: no differences")
            continue
        rows = [
            (d.name, _short(d.left), _short(d.right), "" if d.delta is None else f"{d.delta:+.4f}")
            for d in shown
        ]
        parts.append(f"{title}:\n" + _table(("NAME", f"v{c.left}", f"v{c.right}", "DELTA"), rows))
    return "\n\n".join(parts)


def _short(value: Any, limit: int = 40) -> str:
    text = _fmt(value) if isinstance(value, float | int) or value is None else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@models_group.command("archive")
@click.argument("model")
@click.argument("version", type=int)
@_common
@_errors
def models_archive(url: str | None, as_json: bool, model: str, version: int) -> None:
    """Archive VERSION of MODEL (refused while an alias points at it)."""
    with _registry(url) as registry:
        record = registry.archive(model, version)
    _emit(as_json, record.to_dict(), f"{model} v{record.version}: archived")


@models_group.command("gc")
@click.option("--older-than", "older_than_s", type=float, default=3600.0, show_default=True, help="Seconds.")
@click.option(
    "--unreferenced",
    is_flag=True,
    help="Also remove published directories no version points at (only if no other registry uses the root).",
)
@_common
@_errors
def models_gc(url: str | None, as_json: bool, older_than_s: float, unreferenced: bool) -> None:
    """Remove artifact directories left behind by interrupted registrations."""
    with _registry(url) as registry:
        removed = registry.gc(older_than_s=older_than_s, unreferenced=unreferenced)
    _emit(as_json, {"removed": removed}, "\n".join(removed) if removed else "nothing to remove")
