"""The registry schema comes from Alembic only: every revision goes up and down on SQLite and PostgreSQL,
the ORM agrees with the migrated schema, and a registry refuses a database whose schema is not current."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner

from registry.cli import main
from registry.model_registry import migrate
from registry.model_registry.engine import make_engine, write_engine
from registry.model_registry.errors import SchemaOutOfDate
from registry.model_registry.store import ModelRegistry
from registry.model_registry.tables import Base

pytest_plugins = ["registry_fixtures"]

REGISTRY_TABLES = {"registered_model", "model_version", "lineage", "model_alias", "alias_event"}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_schema_head_constant_matches_the_migration_scripts() -> None:
    # Add a migration -> set migrate.SCHEMA_HEAD to its revision (it lets `open` skip importing Alembic).
    assert migrate.heads() == (migrate.SCHEMA_HEAD,)


def test_every_revision_upgrades_and_downgrades(empty_url: str) -> None:
    revisions = migrate.revisions()
    assert revisions, "no migrations found"
    for revision in revisions:
        assert migrate.upgrade(empty_url, revision) == revision
    assert migrate.check(empty_url)
    assert _tables(empty_url) == REGISTRY_TABLES
    for previous in reversed(["base", *revisions[:-1]]):
        migrate.downgrade(empty_url, "-1")
        assert migrate.current(empty_url) == (None if previous == "base" else previous)
    assert _tables(empty_url) == set()
    # and back up again: downgrade() left nothing behind that blocks a new upgrade
    assert migrate.upgrade(empty_url) == migrate.heads()[0]


def test_orm_metadata_matches_migrated_schema(registry_url: str) -> None:
    engine = make_engine(registry_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
    finally:
        engine.dispose()
    assert diff == []


def test_alias_event_is_append_only(registry, model_dir) -> None:
    from registry_support import register

    register(registry, "m", model_dir())
    registry.set_alias("m", "staging", 1, reason="first")
    with write_engine(registry.engine).connect() as conn:
        for statement in ("UPDATE alias_event SET reason = 'rewritten'", "DELETE FROM alias_event"):
            with pytest.raises(sa.exc.DatabaseError, match="append-only"):
                with conn.begin():
                    conn.exec_driver_sql(statement)
    assert [e.reason for e in registry.alias_events("m")] == ["first"]


def test_open_refuses_a_database_without_schema(empty_url: str, tmp_path: Path) -> None:
    # create the database file / connect once so it exists but holds nothing
    make_engine(empty_url).connect().close()
    with pytest.raises(SchemaOutOfDate, match="no registry schema.*shopscore db upgrade"):
        ModelRegistry.open(empty_url, artifacts_root=tmp_path)


def test_open_refuses_a_missing_sqlite_file_without_creating_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "registry.db"
    with pytest.raises(SchemaOutOfDate, match="no model registry database.*shopscore db upgrade"):
        ModelRegistry.open(f"sqlite:///{path}", artifacts_root=tmp_path)
    assert not path.exists()


def test_open_refuses_an_out_of_date_schema(registry_url: str, tmp_path: Path, monkeypatch) -> None:
    # This code "expects" a newer head than the database has, as after pulling a new migration.
    monkeypatch.setattr(migrate, "SCHEMA_HEAD", "0099")
    with pytest.raises(
        SchemaOutOfDate, match=r"at revision 0001 but this code needs 0099; run `shopscore db upgrade`"
    ):
        ModelRegistry.open(registry_url, artifacts_root=tmp_path)


def test_open_refuses_a_schema_newer_than_the_code(registry_url: str, tmp_path: Path) -> None:
    engine = write_engine(make_engine(registry_url))
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'f00d'")
    engine.dispose()
    with pytest.raises(SchemaOutOfDate, match="revision f00d, which this version of shopscore does not know"):
        ModelRegistry.open(registry_url, artifacts_root=tmp_path)


def test_open_with_upgrade_creates_the_schema(empty_url: str, tmp_path: Path) -> None:
    with ModelRegistry.open(empty_url, artifacts_root=tmp_path, upgrade=True) as registry:
        assert registry.models() == []
    assert migrate.check(empty_url)


def test_sqlite_connections_get_the_pragmas(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    finally:
        engine.dispose()


def test_db_cli_upgrade_current_check(empty_url: str) -> None:
    runner = CliRunner()
    head = migrate.heads()[0]

    checked = runner.invoke(main, ["db", "check", "--database-url", empty_url])
    assert checked.exit_code == 1
    assert "shopscore db upgrade" in checked.output

    upgraded = runner.invoke(main, ["db", "upgrade", "--database-url", empty_url, "--json"])
    assert upgraded.exit_code == 0, upgraded.output
    assert json.loads(upgraded.output)["to"] == head

    current = runner.invoke(main, ["db", "current", "--database-url", empty_url])
    assert current.exit_code == 0 and current.output.startswith(head)

    assert runner.invoke(main, ["db", "check", "--database-url", empty_url]).exit_code == 0
    again = runner.invoke(main, ["db", "upgrade", "--database-url", empty_url])
    assert "already at" in again.output
