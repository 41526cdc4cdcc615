"""Alembic environment for the model registry.

Run through `registry.model_registry.migrate` (and `shopscore db upgrade`), which hands over an open connection in
`config.attributes["connection"]`, already configured by `registry.model_registry.engine` (SQLite pragmas and all).
The plain `alembic` command (for writing new revisions) passes the URL as `-x url=...`.
"""

from __future__ import annotations

from alembic import context

from registry.model_registry.engine import make_engine, write_engine
from registry.model_registry.tables import Base

config = context.config
target_metadata = Base.metadata


def _configure_and_run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("no database: pass -x url=... to alembic, or run `shopscore db upgrade`")
    engine = write_engine(make_engine(url))
    try:
        with engine.connect() as conn:
            _configure_and_run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit(
        "offline (--sql) migrations are not supported: run `shopscore db upgrade` against a database"
    )
run_migrations_online()
