"""Every difference between SQLite and PostgreSQL that the registry cares about, in one place.

SQLite (the zero-setup default) needs four things to behave under concurrent writers:
- foreign keys are off per connection unless `PRAGMA foreign_keys=ON`;
- WAL journal so readers never block the writer (and the writer never blocks readers);
- a busy timeout so a writer waits for the lock instead of failing with "database is locked";
- `BEGIN IMMEDIATE` for write transactions: a deferred transaction that reads and then writes can fail with
  SQLITE_BUSY when another writer got in between, without waiting. Taking the write lock at BEGIN makes
  writers queue up behind the busy timeout instead. pysqlite's own transaction handling emits BEGIN lazily and
  never IMMEDIATE, so, as the SQLAlchemy docs ("Serializable isolation / Savepoints / Transactional DDL")
  describe, we switch it off and emit BEGIN ourselves.
PostgreSQL needs `pool_pre_ping` so a pooled connection killed by a server restart is replaced, not used.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from registry.model_registry.errors import DatabaseUnavailable

SQLITE_BUSY_TIMEOUT_S = 60.0

# Execution option marking connections whose transactions write (the write factory of `sessionmakers`).
_WRITE_OPTION = "shopscore_write"


def display_url(url: str | URL) -> str:
    """The URL with any password masked, for error messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def sqlite_path(url: str | URL) -> Path | None:
    """The database file of a SQLite URL; None for other backends and in-memory databases."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def database_exists(url: str | URL) -> bool:
    """False only for a SQLite file that is not there (connecting would create an empty one)."""
    path = sqlite_path(url)
    return path is None or path.exists()


@contextmanager
def translate_connection_errors(url: str | URL) -> Iterator[None]:
    """Turn "cannot connect" into DatabaseUnavailable naming the (password-masked) URL and the fix."""
    try:
        yield
    except sa.exc.OperationalError as exc:
        if not _is_connection_error(exc):
            raise
        raise DatabaseUnavailable(
            f"cannot open the model registry database {display_url(url)}: {' '.join(str(exc.orig).split())}. "
            f"Check SHOPSCORE_DATABASE_URL (or --database-url) and that the server is running"
        ) from exc


def _is_connection_error(exc: sa.exc.OperationalError) -> bool:
    # psycopg raises OperationalError for both "server unreachable" and e.g. serialization problems;
    # connect-time failures carry no SQL statement.
    return exc.connection_invalidated or not exc.statement


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An engine with the registry's per-dialect settings applied."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, **kwargs)
    return sa.create_engine(parsed, pool_pre_ping=True, **kwargs)


def _sqlite_engine(url: URL, **kwargs: Any) -> Engine:
    connect_args = kwargs.pop("connect_args", {})
    in_memory = url.database in (None, "", ":memory:")
    if in_memory:
        # One shared connection, or every checkout would see its own empty database.
        kwargs.setdefault("poolclass", StaticPool)
        connect_args.setdefault("check_same_thread", False)
    # pysqlite's `timeout` installs SQLite's busy handler; the PRAGMA below says the same for clarity.
    connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_S)
    engine = sa.create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver level: SQLAlchemy's "begin" hook below decides how each transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            if not in_memory:
                # WAL is a property of the database file; setting it again is a cheap no-op.
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def write_engine(engine: Engine) -> Engine:
    """The same engine (and pool), but every transaction on it takes SQLite's write lock at BEGIN."""
    return engine.execution_options(**{_WRITE_OPTION: True})


def sessionmakers(engine: Engine) -> tuple[sessionmaker[Session], sessionmaker[Session]]:
    """(read, write) session factories. Use the write one for every transaction that may write."""
    read = sessionmaker(engine, expire_on_commit=False)
    write = sessionmaker(write_engine(engine), expire_on_commit=False)
    return read, write


def insert_ignoring_conflict(table: Any, values: dict[str, Any], dialect: str) -> sa.Executable:
    """`INSERT ... ON CONFLICT DO NOTHING`: both dialects have it, spelled through their own insert()."""
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]
    else:
        raise NotImplementedError(f"the registry supports SQLite and PostgreSQL, not {dialect!r}")
    return insert(table).values(**values).on_conflict_do_nothing()
