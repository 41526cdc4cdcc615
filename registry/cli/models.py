"""`shopscore models ...`: list, inspect, promote, roll back and archive registered versions."""

from __future__ import annotations

import json
from typing import Any

import click

from registry.cli.common import (
    database_options,
    emit,
    open_registry,
    table,
    version_ref,
)
from registry.model_registry.records import Comparison, ModelVersion


@click.group("models")
def models_group() -> None:
    """List, inspect, promote and roll back registered model versions."""


@models_group.command("list")
@database_options
def models_list(url: str | None, as_json: bool) -> None:
    """Registered models with their latest version and aliases."""
    with open_registry(url) as registry:
        found = registry.models()
    rows = [
        (m.name, m.latest_version, m.version_count, ", ".join(f"{a}=v{v}" for a, v in m.aliases.items()))
        for m in found
    ]
    emit(
        as_json,
        [m.to_dict() for m in found],
        lambda: table(("MODEL", "LATEST", "VERSIONS", "ALIASES"), rows) if rows else "no registered models",
    )


@models_group.command("show")
@click.argument("model")
@click.argument("version", required=False)
@database_options
def models_show(url: str | None, as_json: bool, model: str, version: str | None) -> None:
    """All versions of MODEL, or one VERSION (a number or an alias) in detail."""
    with open_registry(url) as registry:
        if version is None:
            found = registry.versions(model)
            emit(as_json, [v.to_dict() for v in found], lambda: _versions_table(found))
            return
        record = registry.get_version(model, version_ref(registry, model, version))
    emit(as_json, record.to_dict(), lambda: _version_text(record))


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
    return table(headers, rows)


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
@database_options
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
    with open_registry(url) as registry:
        number = version_ref(registry, model, version)
        event = registry.set_alias(model, alias, number, reason=reason, actor=actor, force=force, token=token)
    forced = " (forced)" if event.forced else ""
    emit(
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
@database_options
def models_rollback(
    url: str | None, as_json: bool, model: str, alias: str, reason: str, actor: str | None, token: str | None
) -> None:
    """Move ALIAS back to the version it held before its last move."""
    with open_registry(url) as registry:
        event = registry.rollback(model, alias, reason=reason, actor=actor, token=token)
    emit(
        as_json, event.to_dict(), f"{model}@{alias}: v{event.from_version} -> v{event.to_version} (rollback)"
    )


@models_group.command("log")
@click.argument("model")
@click.option("--alias", default=None, help="Only this alias.")
@database_options
def models_log(url: str | None, as_json: bool, model: str, alias: str | None) -> None:
    """The audit log of MODEL's alias moves, oldest first."""
    with open_registry(url) as registry:
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
    emit(
        as_json,
        [e.to_dict() for e in events],
        lambda: (
            table(("TIME (UTC)", "ALIAS", "FROM", "TO", "ACTION", "ACTOR", "REASON"), rows)
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
@database_options
def models_compare(url: str | None, as_json: bool, model: str, v1: str, v2: str, show_all: bool) -> None:
    """Metrics, params and lineage of two versions (numbers or aliases) side by side."""
    with open_registry(url) as registry:
        comparison = registry.compare(
            model, version_ref(registry, model, v1), version_ref(registry, model, v2)
        )
    emit(as_json, comparison.to_dict(), lambda: _comparison_text(comparison, show_all))


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
        parts.append(f"{title}:\n" + table(("NAME", f"v{c.left}", f"v{c.right}", "DELTA"), rows))
    return "\n\n".join(parts)


def _short(value: Any, limit: int = 40) -> str:
    text = _fmt(value) if isinstance(value, float | int) or value is None else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@models_group.command("archive")
@click.argument("model")
@click.argument("version", type=int)
@database_options
def models_archive(url: str | None, as_json: bool, model: str, version: int) -> None:
    """Archive VERSION of MODEL (refused while an alias points at it)."""
    with open_registry(url) as registry:
        record = registry.archive(model, version)
    emit(as_json, record.to_dict(), f"{model} v{record.version}: archived")


@models_group.command("gc")
@click.option("--older-than", "older_than_s", type=float, default=3600.0, show_default=True, help="Seconds.")
@click.option(
    "--unreferenced",
    is_flag=True,
    help="Also remove published directories no version points at (only if no other registry uses the root).",
)
@database_options
def models_gc(url: str | None, as_json: bool, older_than_s: float, unreferenced: bool) -> None:
    """Remove artifact directories left behind by interrupted registrations."""
    with open_registry(url) as registry:
        removed = registry.gc(older_than_s=older_than_s, unreferenced=unreferenced)
    emit(as_json, {"removed": removed}, "\n".join(removed) if removed else "nothing to remove")
