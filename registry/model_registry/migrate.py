"""Alembic, driven from Python: the only way the registry schema is created or changed.

`shopscore db upgrade` calls `upgrade()`; `ModelRegistry.open()` calls `require_current()` and refuses a
database whose schema is missing, older or newer than the migrations shipped with this code.

Alembic is imported only by the functions that migrate: opening a registry (every CLI call, every serving
replica, every worker process) just reads `alembic_version` and compares it with `SCHEMA_HEAD`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from registry.model_registry.engine import (
    display_url,
    make_engine,
    sqlite_path,
    translate_connection_errors,
    write_engine,
)
from registry.model_registry.errors import SchemaOutOfDate

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

UPGRADE_COMMAND = "shopscore db upgrade"

# The newest revision in migrations/versions. Written out so that checking a database does not import
# Alembic (a third of a second per process); tests/test_registry_migrations.py keeps it equal to the head.
SCHEMA_HEAD = "0001"


def migrations_dir() -> Path:
    """The Alembic script directory, shipped inside the wheel as `registry._migrations`."""
    package = importlib.import_module("registry._migrations")
    return Path(package.__file__ or "").resolve().parent


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def script_directory() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())


def heads() -> tuple[str, ...]:
    """The head revision(s) of the migration scripts."""
    return tuple(script_directory().get_heads())


def revisions() -> list[str]:
    """Every revision, oldest first."""
    return [script.revision for script in reversed(list(script_directory().walk_revisions()))]


@contextmanager
def _connection(url_or_engine: str | Engine, *, write: bool) -> Iterator[Connection]:
    """A connection in a transaction that commits when the block ends without error."""
    owned = isinstance(url_or_engine, str)
    engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    try:
        with (
            translate_connection_errors(engine.url),
            (write_engine(engine) if write else engine).begin() as conn,
        ):
            yield conn
    finally:
        if owned:
            engine.dispose()


def upgrade(url: str | Engine, revision: str = "heads") -> str | None:
    """Migrate the database up to `revision` (default: the newest). Returns the revision it is at."""
    from alembic import command

    path = sqlite_path(url.url if isinstance(url, Engine) else url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)  # the workspace may not exist yet on a fresh clone
    with _connection(url, write=True) as connection:
        command.upgrade(_config(connection), revision)
    return current(url)


def downgrade(url: str | Engine, revision: str) -> str | None:
    """Migrate the database down to `revision` ("base" removes the registry schema)."""
    from alembic import command

    with _connection(url, write=True) as connection:
        command.downgrade(_config(connection), revision)
    return current(url)


def current(url: str | Engine) -> str | None:
    """The revision the database is at, or None when it has no registry schema."""
    with _connection(url, write=False) as connection:
        if not sa.inspect(connection).has_table("alembic_version"):
            return None
        found = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    return ",".join(sorted(found)) if found else None


def check(url: str | Engine) -> bool:
    """True when the database is at exactly the head revision of this code."""
    return current(url) == SCHEMA_HEAD


def require_current(url: str | Engine) -> None:
    """Raise SchemaOutOfDate, naming the fix, unless the database is at this code's head revision."""
    at = current(url)
    if at == SCHEMA_HEAD:
        return
    where = display_url(url.url if isinstance(url, Engine) else url)
    if at is None:
        raise SchemaOutOfDate(
            f"the model registry database {where} has no registry schema; "
            f"create it with `{UPGRADE_COMMAND}` (or ModelRegistry.open(..., upgrade=True))"
        )
    if not set(at.split(",")) <= set(revisions()):
        raise SchemaOutOfDate(
            f"the model registry database {where} is at revision {at}, which this version of shopscore does "
            f"not know (it ships up to {SCHEMA_HEAD}); upgrade the shopscore package"
        )
    raise SchemaOutOfDate(
        f"the model registry database {where} is at revision {at} but this code needs {SCHEMA_HEAD}; "
        f"run `{UPGRADE_COMMAND}`"
    )
