"""The model registry's Python API: register versions, move aliases, read the audit log.

Rules every public method follows:
- validate the arguments first, so a bad call opens no transaction and writes nothing;
- do its work in exactly one `with Session.begin()` (write transactions take SQLite's lock at BEGIN);
- return frozen dataclasses from `registry.model_registry.records`, never ORM rows;
- call plugins' lifecycle hooks only after the commit.

Registering a version (crash-safe ordering):
1. copy the model directory to a staging place in the artifact root and hash it (no transaction yet);
2. in one transaction: bump the model's `next_version` counter with UPDATE ... RETURNING, which row-locks
   the model until commit (PostgreSQL) or runs under the database write lock (SQLite BEGIN IMMEDIATE);
   rename the staged copy to `<root>/<model>/<version>`; insert the version row; commit.
A crash before the commit rolls the counter back, so no number is lost and no row exists without its
artifact; the renamed directory it may leave behind is replaced by the next registration that gets the
same number (which holds the same lock), and `gc()` removes stale staging copies.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from registry.model_registry import migrate, validate
from registry.model_registry.artifacts import fetch_artifact, gc_artifacts, stage_artifact
from registry.model_registry.engine import (
    database_exists,
    display_url,
    insert_ignoring_conflict,
    make_engine,
    sessionmakers,
    sqlite_path,
    translate_connection_errors,
)
from registry.model_registry.errors import (
    NothingToRollBack,
    PluginsUnavailable,
    PromotionRefused,
    SchemaOutOfDate,
    UnknownAlias,
    UnknownModel,
    UnknownVersion,
    VersionArchived,
    VersionInUse,
)
from registry.model_registry.promotion import PromotionPolicy, check_role
from registry.model_registry.records import AliasEvent, Comparison, FieldDiff, ModelVersion, RegisteredModel
from registry.model_registry.tables import (
    AliasEventRow,
    LineageRow,
    ModelAliasRow,
    ModelVersionRow,
    RegisteredModelRow,
    utcnow,
)
from registry.plugin_host import PluginError, PluginHost, default_host
from registry.settings import Settings, crash_step


# Fault injection for the crash-safety tests: the process exits abruptly at the named step
# ("staged", "allocated", "published", "committed") of register_version.
def _crash_point(step: str) -> None:
    if crash_step() == step:
        os._exit(86)


class ModelRegistry:
    """A handle on one registry database and its artifact root. Cheap to keep open; close() when done."""

    def __init__(
        self,
        engine: Engine,
        *,
        artifacts_root: str | os.PathLike[str],
        policy: PromotionPolicy | None = None,
        plugins: PluginHost | None = None,
        role: str | None = None,
    ) -> None:
        self.engine = engine
        self.artifacts_root = str(artifacts_root)
        self.policy = policy or PromotionPolicy.from_env()
        self.role = check_role(role)
        self._plugin_host = plugins
        self._read, self._write = sessionmakers(engine)

    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        settings: Settings | None = None,
        upgrade: bool = False,
        artifacts_root: str | os.PathLike[str] | None = None,
        policy: PromotionPolicy | None = None,
        plugins: PluginHost | None = None,
        role: str | None = None,
    ) -> ModelRegistry:
        """Open the registry at `url` (default: `settings.database_url`, i.e. $SHOPSCORE_DATABASE_URL or the
        SQLite file in the workspace). Refuses a database whose schema is not current unless `upgrade=True`,
        which runs the migrations first (what `shopscore db upgrade` does).

        `plugins` defaults to the process-wide plugin host (loaded on the first write);
        `role="promoter"` allows moving protected aliases without a token.
        """
        if url is None or artifacts_root is None:
            settings = settings or Settings.from_env()
            url = url or settings.database_url
            artifacts_root = artifacts_root if artifacts_root is not None else settings.artifacts_root
        check_role(role)
        if not upgrade:
            _refuse_missing_sqlite_file(url)
        engine = make_engine(url)
        try:
            with translate_connection_errors(url):
                if upgrade:
                    migrate.upgrade(engine)
                migrate.require_current(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, artifacts_root=artifacts_root, policy=policy, plugins=plugins, role=role)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> ModelRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ModelRegistry({display_url(self.engine.url)!r}, artifacts_root={self.artifacts_root!r})"

    # ----------------------------------------------------------------------------------------- writing

    def register_version(
        self,
        model: str,
        artifact_dir: str | os.PathLike[str],
        *,
        lineage: dict[str, Any],
        metrics: dict[str, Any],
        params: dict[str, Any],
        created_by: str | None = None,
    ) -> ModelVersion:
        """Copy `artifact_dir` into the artifact store and record it as the next version of `model`
        (creating the model on its first version). Returns the new version."""
        validate.model_name(model)
        lineage_doc = validate.lineage_document(lineage)
        metrics_doc = validate.metrics_document(metrics)
        params_doc = validate.json_document(params, "params")
        creator = validate.actor_name(created_by)
        plugins = self._plugins()
        staged = stage_artifact(artifact_dir, self.artifacts_root)
        _crash_point("staged")
        try:
            with self._write.begin() as session:
                model_id, number = self._allocate_version(session, model)
                _crash_point("allocated")
                uri = staged.publish(model, number)
                _crash_point("published")
                row = ModelVersionRow(
                    model_id=model_id,
                    version=number,
                    artifact_uri=uri,
                    sha256=staged.sha256,
                    metrics=metrics_doc,
                    params=params_doc,
                    status="ready",
                    created_at=utcnow(),
                    created_by=creator,
                    lineage=_lineage_row(lineage_doc),
                )
                session.add(row)
                session.flush()
                result = _version_record(model, row, ())
        finally:
            staged.discard()  # nothing left to remove once published
        _crash_point("committed")
        plugins.on_model_registered(result)
        return result

    def set_alias(
        self,
        model: str,
        alias: str,
        version: int,
        *,
        reason: str,
        actor: str | None = None,
        force: bool = False,
        token: str | None = None,
    ) -> AliasEvent:
        """Point `alias` at `version`, audited. A protected alias needs the promoter token or role and must
        pass the promotion checks, unless `force=True` (recorded as forced). Setting an alias to the version
        it already points at changes nothing and returns the event that put it there."""
        validate.model_name(model)
        validate.alias_name(alias)
        validate.version_number(version)
        reason = validate.reason_text(reason)
        who = validate.actor_name(actor)
        self.policy.authorize(model, alias, token=token, role=self.role)
        plugins = self._plugins()
        with self._write.begin() as session:
            model_row = self._lock_model(session, model)
            candidate = self._version_row(session, model_row, version)
            if candidate.status == "archived":
                raise VersionArchived(
                    f"version {version} of model {model!r} is archived and cannot receive alias {alias!r}; "
                    f"pick a ready version (`shopscore models show {model}`)"
                )
            alias_row = session.get(ModelAliasRow, (model_row.id, alias))
            if alias_row is not None and alias_row.version == version:
                return _event_record(model, self._last_event(session, model_row.id, alias))
            if self.policy.is_protected(alias):
                vetoes = self._promotion_vetoes(session, plugins, model_row, candidate, alias_row)
                if vetoes and not force:
                    raise PromotionRefused(
                        f"promotion of model {model!r} version {version} to {alias!r} refused:\n- "
                        + "\n- ".join(vetoes)
                        + "\nFix the candidate, or override with force=True (--force) and a reason "
                        "saying why.",
                        vetoes,
                    )
            event = self._move(
                session, model_row, alias_row, alias=alias, version=version, action="set", actor=who,
                reason=reason, forced=force,
            )  # fmt: skip
        plugins.on_alias_changed(event)
        return event

    def rollback(
        self, model: str, alias: str, *, reason: str, actor: str | None = None, token: str | None = None
    ) -> AliasEvent:
        """Move `alias` back to the version it held before its last move (audited as a rollback).

        Promotion checks do not run (a rollback is the way out of a bad promotion); a protected alias still
        needs the promoter token or role. Rolling back twice returns to where it started."""
        validate.model_name(model)
        validate.alias_name(alias)
        reason = validate.reason_text(reason, what="rollback")
        who = validate.actor_name(actor)
        self.policy.authorize(model, alias, token=token, role=self.role)
        plugins = self._plugins()
        with self._write.begin() as session:
            model_row = self._lock_model(session, model)
            alias_row = session.get(ModelAliasRow, (model_row.id, alias))
            if alias_row is None:
                raise self._unknown_alias(session, model_row, alias)
            last = self._last_event(session, model_row.id, alias)
            if last.from_version is None:
                raise NothingToRollBack(
                    f"alias {alias!r} of model {model!r} has only ever pointed at version "
                    f"{last.to_version}; there is no earlier version to roll back to "
                    f"(use set_alias / `shopscore models promote`)"
                )
            target = self._version_row(session, model_row, last.from_version)
            if target.status == "archived":
                raise VersionArchived(
                    f"cannot roll alias {alias!r} of model {model!r} back to version {target.version}: it is "
                    f"archived; promote another version instead"
                )
            event = self._move(
                session, model_row, alias_row, alias=alias, version=target.version, action="rollback",
                actor=who, reason=reason, forced=False,
            )  # fmt: skip
        plugins.on_alias_changed(event)
        return event

    def archive(self, model: str, version: int) -> ModelVersion:
        """Mark a version archived (kept for the record; no alias may point at it). Refused while one does."""
        validate.model_name(model)
        validate.version_number(version)
        with self._write.begin() as session:
            model_row = self._lock_model(session, model)
            row = self._version_row(session, model_row, version)
            holders = sorted(
                session.scalars(
                    sa.select(ModelAliasRow.alias).where(
                        ModelAliasRow.model_id == model_row.id, ModelAliasRow.version == version
                    )
                )
            )
            if holders:
                raise VersionInUse(
                    f"version {version} of model {model!r} is still the target of alias(es) "
                    f"{', '.join(holders)}; move them to another version first (`shopscore models promote`)"
                )
            row.status = "archived"
            session.flush()
            return _version_record(model, row, ())

    def gc(self, *, older_than_s: float = 3600.0, unreferenced: bool = False) -> list[str]:
        """Remove staging copies left by interrupted registrations, older than `older_than_s`. Returns URIs.

        With `unreferenced=True`, also published directories that no version of *this* registry points at;
        only safe when no other registry database shares the artifact root."""
        referenced = None
        if unreferenced:
            with self._read.begin() as session:
                referenced = set(session.scalars(sa.select(ModelVersionRow.artifact_uri)))
        return gc_artifacts(self.artifacts_root, referenced, older_than_s=older_than_s)

    # ----------------------------------------------------------------------------------------- reading

    def resolve(self, model: str, alias: str) -> ModelVersion:
        """The version `alias` points at."""
        validate.model_name(model)
        validate.alias_name(alias)
        with self._read.begin() as session:
            model_row = self._model(session, model)
            alias_row = session.get(ModelAliasRow, (model_row.id, alias))
            if alias_row is None:
                raise self._unknown_alias(session, model_row, alias)
            return self._record(session, model_row, self._version_row(session, model_row, alias_row.version))

    def alias_versions(self, model: str) -> dict[str, int]:
        """{alias: version} of `model` in one indexed query, {} for a model that does not exist: what a
        server polls to pick up alias moves."""
        validate.model_name(model)
        query = (
            sa.select(ModelAliasRow.alias, ModelAliasRow.version)
            .join(RegisteredModelRow, RegisteredModelRow.id == ModelAliasRow.model_id)
            .where(RegisteredModelRow.name == model)
        )
        with self.engine.connect() as conn:
            return {alias: version for alias, version in conn.execute(query)}

    def get_version(self, model: str, version: int) -> ModelVersion:
        validate.model_name(model)
        validate.version_number(version)
        with self._read.begin() as session:
            model_row = self._model(session, model)
            return self._record(session, model_row, self._version_row(session, model_row, version))

    def versions(
        self, model: str, *, feature_service: str | None = None, include_archived: bool = True
    ) -> list[ModelVersion]:
        """Every version of `model`, oldest first, optionally only those using one FeatureService."""
        validate.model_name(model)
        with self._read.begin() as session:
            model_row = self._model(session, model)
            query = sa.select(ModelVersionRow).where(ModelVersionRow.model_id == model_row.id)
            if feature_service is not None:
                query = query.join(LineageRow).where(LineageRow.feature_service == feature_service)
            if not include_archived:
                query = query.where(ModelVersionRow.status == "ready")
            rows = session.scalars(query.order_by(ModelVersionRow.version)).unique().all()
            aliases = self._aliases_by_version(session, model_row.id)
            return [_version_record(model, row, aliases.get(row.version, ())) for row in rows]

    def models(self) -> list[RegisteredModel]:
        """Every registered model with its latest version number and aliases, by name."""
        with self._read.begin() as session:
            stats = {
                model_id: (latest, count)
                for model_id, latest, count in session.execute(
                    sa.select(
                        ModelVersionRow.model_id, sa.func.max(ModelVersionRow.version), sa.func.count()
                    ).group_by(ModelVersionRow.model_id)
                )
            }
            aliases: dict[int, dict[str, int]] = {}
            for model_id, alias, version in session.execute(
                sa.select(ModelAliasRow.model_id, ModelAliasRow.alias, ModelAliasRow.version).order_by(
                    ModelAliasRow.alias
                )
            ):
                aliases.setdefault(model_id, {})[alias] = version
            return [
                RegisteredModel(
                    name=row.name,
                    created_at=row.created_at,
                    latest_version=stats.get(row.id, (None, 0))[0],
                    version_count=stats.get(row.id, (None, 0))[1],
                    aliases=aliases.get(row.id, {}),
                )
                for row in session.scalars(sa.select(RegisteredModelRow).order_by(RegisteredModelRow.name))
            ]

    def alias_events(self, model: str, alias: str | None = None) -> list[AliasEvent]:
        """The audit log of `model`'s alias moves (optionally of one alias), oldest first."""
        validate.model_name(model)
        if alias is not None:
            validate.alias_name(alias)
        with self._read.begin() as session:
            model_row = self._model(session, model)
            query = sa.select(AliasEventRow).where(AliasEventRow.model_id == model_row.id)
            if alias is not None:
                query = query.where(AliasEventRow.alias == alias)
            return [_event_record(model, row) for row in session.scalars(query.order_by(AliasEventRow.id))]

    def compare(self, model: str, v1: int, v2: int) -> Comparison:
        """Metrics, params and lineage of two versions side by side; numeric deltas are v2 - v1."""
        validate.model_name(model)
        validate.version_number(v1)
        validate.version_number(v2)
        with self._read.begin() as session:
            model_row = self._model(session, model)
            left = self._record(session, model_row, self._version_row(session, model_row, v1))
            right = self._record(session, model_row, self._version_row(session, model_row, v2))
        return Comparison(
            model=model,
            left=v1,
            right=v2,
            metrics=_diff(left.metrics, right.metrics),
            params=_diff(left.params, right.params),
            lineage=_diff(left.lineage, right.lineage),
        )

    def fetch(self, model: str, version_or_alias: int | str) -> tuple[ModelVersion, Path]:
        """A version (by number or alias) and a local directory with its artifact, hash-verified."""
        if isinstance(version_or_alias, str):
            record = self.resolve(model, version_or_alias)
        else:
            record = self.get_version(model, version_or_alias)
        return record, fetch_artifact(record.artifact_uri, record.sha256)

    # ----------------------------------------------------------------------------------------- helpers

    def _plugins(self) -> PluginHost:
        # Resolved before a write transaction opens: a plugin that fails to load must stop the call before
        # anything is committed, not after.
        if self._plugin_host is None:
            try:
                self._plugin_host = default_host()
            except PluginError as exc:
                raise PluginsUnavailable(
                    f"{exc} (the registry runs every plugin's check_promotion and lifecycle hooks, so it needs them)"
                ) from exc
        return self._plugin_host

    def _allocate_version(self, session: Session, model: str) -> tuple[int, int]:
        """(model id, version number): creates the model on first use, then bumps its counter in the
        database. The UPDATE holds the model's row lock until commit, so concurrent registrations of one
        model take numbers one after another; the counter rolls back with a failed transaction."""
        dialect = session.get_bind().dialect.name
        values = {"name": model, "next_version": 1, "created_at": utcnow()}
        session.execute(insert_ignoring_conflict(RegisteredModelRow, values, dialect))
        model_id, next_version = session.execute(
            sa.update(RegisteredModelRow)
            .where(RegisteredModelRow.name == model)
            .values(next_version=RegisteredModelRow.next_version + 1)
            .returning(RegisteredModelRow.id, RegisteredModelRow.next_version)
        ).one()
        return model_id, next_version - 1

    def _model(self, session: Session, model: str) -> RegisteredModelRow:
        row = session.scalars(
            sa.select(RegisteredModelRow).where(RegisteredModelRow.name == model)
        ).one_or_none()
        if row is None:
            raise self._unknown_model(session, model)
        return row

    def _lock_model(self, session: Session, model: str) -> RegisteredModelRow:
        """The model row, locked until commit (PostgreSQL); SQLite's BEGIN IMMEDIATE already serialises."""
        row = session.scalars(
            sa.select(RegisteredModelRow).where(RegisteredModelRow.name == model).with_for_update()
        ).one_or_none()
        if row is None:
            raise self._unknown_model(session, model)
        return row

    def _version_row(self, session: Session, model_row: RegisteredModelRow, version: int) -> ModelVersionRow:
        row = session.scalars(
            sa.select(ModelVersionRow).where(
                ModelVersionRow.model_id == model_row.id, ModelVersionRow.version == version
            )
        ).one_or_none()
        if row is None:
            numbers = list(
                session.scalars(
                    sa.select(ModelVersionRow.version)
                    .where(ModelVersionRow.model_id == model_row.id)
                    .order_by(ModelVersionRow.version)
                )
            )
            have = f"its versions are {_ranges(numbers)}" if numbers else "it has no versions"
            raise UnknownVersion(
                f"model {model_row.name!r} has no version {version}; {have} "
                f"(`shopscore models show {model_row.name}`)"
            )
        return row

    def _record(self, session: Session, model_row: RegisteredModelRow, row: ModelVersionRow) -> ModelVersion:
        aliases = session.scalars(
            sa.select(ModelAliasRow.alias)
            .where(ModelAliasRow.model_id == model_row.id, ModelAliasRow.version == row.version)
            .order_by(ModelAliasRow.alias)
        )
        return _version_record(model_row.name, row, tuple(aliases))

    def _aliases_by_version(self, session: Session, model_id: int) -> dict[int, tuple[str, ...]]:
        found: dict[int, list[str]] = {}
        for alias, version in session.execute(
            sa.select(ModelAliasRow.alias, ModelAliasRow.version)
            .where(ModelAliasRow.model_id == model_id)
            .order_by(ModelAliasRow.alias)
        ):
            found.setdefault(version, []).append(alias)
        return {version: tuple(names) for version, names in found.items()}

    def _last_event(self, session: Session, model_id: int, alias: str) -> AliasEventRow:
        return session.scalars(
            sa.select(AliasEventRow)
            .where(AliasEventRow.model_id == model_id, AliasEventRow.alias == alias)
            .order_by(AliasEventRow.id.desc())
            .limit(1)
        ).one()

    def _promotion_vetoes(
        self,
        session: Session,
        plugins: PluginHost,
        model_row: RegisteredModelRow,
        candidate: ModelVersionRow,
        alias_row: ModelAliasRow | None,
    ) -> list[str]:
        """Every reason the built-in check and the plugins give against moving a protected alias."""
        current_row = self._version_row(session, model_row, alias_row.version) if alias_row else None
        candidate_record = self._record(session, model_row, candidate)
        current_record = self._record(session, model_row, current_row) if current_row else None
        vetoes = self.policy.builtin_vetoes(candidate_record, current_record)
        return vetoes + plugins.check_promotion(candidate_record, current_record)

    def _move(
        self,
        session: Session,
        model_row: RegisteredModelRow,
        alias_row: ModelAliasRow | None,
        *,
        alias: str,
        version: int,
        action: str,
        actor: str,
        reason: str,
        forced: bool,
    ) -> AliasEvent:
        """Point the alias at `version` and append the audit event, in the caller's transaction."""
        now = utcnow()
        previous = alias_row.version if alias_row is not None else None
        if alias_row is None:
            session.add(ModelAliasRow(model_id=model_row.id, alias=alias, version=version, updated_at=now))
        else:
            alias_row.version = version
            alias_row.updated_at = now
        event = AliasEventRow(
            model_id=model_row.id,
            alias=alias,
            from_version=previous,
            to_version=version,
            action=action,
            actor=actor,
            reason=reason,
            forced=forced,
            created_at=now,
        )
        session.add(event)
        session.flush()
        return _event_record(model_row.name, event)

    def _unknown_model(self, session: Session, model: str) -> UnknownModel:
        names = list(
            session.scalars(sa.select(RegisteredModelRow.name).order_by(RegisteredModelRow.name).limit(20))
        )
        known = f"registered models: {', '.join(names)}" if names else "the registry has no models yet"
        return UnknownModel(
            f"no registered model named {model!r} ({known}); check the name (`shopscore models list`) or "
            f"register a first version"
        )

    def _unknown_alias(self, session: Session, model_row: RegisteredModelRow, alias: str) -> UnknownAlias:
        names = list(
            session.scalars(
                sa.select(ModelAliasRow.alias)
                .where(ModelAliasRow.model_id == model_row.id)
                .order_by(ModelAliasRow.alias)
            )
        )
        known = f"its aliases: {', '.join(names)}" if names else "it has no aliases yet"
        return UnknownAlias(
            f"model {model_row.name!r} has no alias {alias!r} ({known}); set it with "
            f"`shopscore models promote {model_row.name} VERSION --alias {alias} --reason ...`"
        )


def _refuse_missing_sqlite_file(url: str) -> None:
    """Opening must not create an empty SQLite file as a side effect of a typo in the path."""
    if not database_exists(url):
        raise SchemaOutOfDate(
            f"there is no model registry database at {sqlite_path(url)}; create it with "
            f"`{migrate.UPGRADE_COMMAND}` (or ModelRegistry.open(..., upgrade=True))"
        )


def _lineage_row(document: dict[str, Any]) -> LineageRow:
    columns = {
        key: document.get(key)
        for key in ("feast_project", "feature_service", "horizon_days", "data_fingerprint", "code_version")
    }
    details = {key: value for key, value in document.items() if key not in columns}
    return LineageRow(**columns, details=details)


def _lineage_dict(row: LineageRow) -> dict[str, Any]:
    return {
        "feast_project": row.feast_project,
        "feature_service": row.feature_service,
        "horizon_days": row.horizon_days,
        "data_fingerprint": row.data_fingerprint,
        "code_version": row.code_version,
        **row.details,
    }


def _version_record(model: str, row: ModelVersionRow, aliases: tuple[str, ...]) -> ModelVersion:
    return ModelVersion(
        model=model,
        version=row.version,
        artifact_uri=row.artifact_uri,
        sha256=row.sha256,
        lineage=_lineage_dict(row.lineage),
        metrics=dict(row.metrics),
        params=dict(row.params),
        status=row.status,
        created_at=row.created_at,
        created_by=row.created_by,
        aliases=aliases,
    )


def _event_record(model: str, row: AliasEventRow) -> AliasEvent:
    return AliasEvent(
        id=row.id,
        model=model,
        alias=row.alias,
        from_version=row.from_version,
        to_version=row.to_version,
        action=row.action,
        actor=row.actor,
        reason=row.reason,
        forced=row.forced,
        created_at=row.created_at,
    )


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _diff(left: dict[str, Any], right: dict[str, Any]) -> tuple[FieldDiff, ...]:
    diffs = []
    for name in sorted(set(left) | set(right)):
        a, b = left.get(name), right.get(name)
        x, y = _number(a), _number(b)
        delta = y - x if x is not None and y is not None else None
        diffs.append(FieldDiff(name=name, left=a, right=b, changed=a != b, delta=delta))
    return tuple(diffs)


def _ranges(numbers: list[int]) -> str:
    """[1, 2, 3, 5] -> '1-3, 5'."""
    parts: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(parts)
