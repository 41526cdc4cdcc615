"""Alembic, driven from Python: the only way the registry schema is created or changed.

`shopscore db upgrade` calls `upgrade()`; `ModelRegistry.open()` calls `require_current()` and refuses a
database whose schema is missing, older or newer than the migrations shipped with this code.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from registry.db.engine import display_url, make_engine, sqlite_path, write_engine
from registry.db.errors import SchemaOutOfDate

UPGRADE_COMMAND = "shopscore db upgrade"


def migrations_dir() -> Path:
    """The Alembic script directory, shipped inside the wheel as `registry._migrations`."""
    package = importlib.import_module("registry._migrations")
    return Path(package.__file__ or "").resolve().parent


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def heads() -> tuple[str, ...]:
    """The revision(s) this code expects the database to be at."""
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
        with (write_engine(engine) if write else engine).begin() as connection:
            yield connection
    finally:
        if owned:
            engine.dispose()


def upgrade(url: str | Engine, revision: str = "heads") -> str | None:
    """Migrate the database up to `revision` (default: the newest). Returns the revision it is at."""
    path = sqlite_path(url) if isinstance(url, str) else None
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)  # the workspace may not exist yet on a fresh clone
    with _connection(url, write=True) as connection:
        command.upgrade(_config(connection), revision)
    return current(url)


def downgrade(url: str | Engine, revision: str) -> str | None:
    """Migrate the database down to `revision` ("base" removes the registry schema)."""
    with _connection(url, write=True) as connection:
        command.downgrade(_config(connection), revision)
    return current(url)


def current(url: str | Engine) -> str | None:
    """The revision the database is at, or None when it has no registry schema."""
    with _connection(url, write=False) as connection:
        found = MigrationContext.configure(connection).get_current_heads()
    return ",".join(sorted(found)) if found else None


def check(url: str | Engine) -> bool:
    """True when the database is at exactly the head revision(s) of this code."""
    return current(url) == ",".join(sorted(heads()))


def require_current(url: str | Engine) -> None:
    """Raise SchemaOutOfDate, naming the fix, unless the database is at this code's head revision."""
    at = current(url)
    expected = ",".join(sorted(heads()))
    if at == expected:
        return
    where = display_url(url.url if isinstance(url, Engine) else url)
    if at is None:
        raise SchemaOutOfDate(
            f"the model registry database {where} has no registry schema; "
            f"create it with `{UPGRADE_COMMAND}` (or ModelRegistry.open(..., upgrade=True))"
        )
    known = set(revisions())
    if not set(at.split(",")) <= known:
        raise SchemaOutOfDate(
            f"the model registry database {where} is at revision {at}, which this version of shopscore does "
            f"not know (it ships up to {expected}); upgrade the shopscore package"
        )
    raise SchemaOutOfDate(
        f"the model registry database {where} is at revision {at} but this code needs {expected}; "
        f"run `{UPGRADE_COMMAND}`"
    )
