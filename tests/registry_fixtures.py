"""Fixtures for the model registry tests (tests/test_registry_*.py load them with `pytest_plugins`).

Databases are real: a SQLite file per test, and a fresh PostgreSQL database per test, created from a
migrated template database made once per session, dropped afterwards. PostgreSQL tests are skipped, with
the reason, only when the server at SHOPSCORE_TEST_POSTGRES_URL is unreachable.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import pytest
import sqlalchemy as sa
from registry_support import PROMOTER_TOKEN, write_model_dir

from registry.model_registry import migrate
from registry.model_registry.promotion import PromotionPolicy
from registry.model_registry.store import ModelRegistry
from registry.plugin_host import PluginHost

POSTGRES_ADMIN_URL = os.environ.get(
    "SHOPSCORE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@cache
def postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used, or None when it can."""
    engine = sa.create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return None
    except Exception as exc:  # any failure to connect means: skip, and say why
        return (
            f"PostgreSQL unreachable at {POSTGRES_ADMIN_URL} ({type(exc).__name__}: {exc}); "
            f"start it or point SHOPSCORE_TEST_POSTGRES_URL at one"
        )
    finally:
        engine.dispose()


def _admin() -> sa.Engine:
    return sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")


@contextmanager
def postgres_database(template: str | None = None) -> Iterator[str]:
    """A new, uniquely named PostgreSQL database (optionally a copy of `template`), dropped afterwards."""
    reason = postgres_unavailable()
    if reason:
        pytest.skip(reason)
    name = f"shopscore_reg_{uuid.uuid4().hex[:12]}"
    admin = _admin()
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(
                f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
            )
        yield sa.make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """Name of a migrated PostgreSQL database to copy from (CREATE DATABASE ... TEMPLATE)."""
    with postgres_database() as url:
        migrate.upgrade(url)
        yield sa.make_url(url).database  # type: ignore[misc]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("registry-template") / "registry.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def empty_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database with no registry schema."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
    else:
        with postgres_database() as url:
            yield url


@pytest.fixture
def registry_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database at the newest schema."""
    if backend == "sqlite":
        target = tmp_path / "registry.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), target)
        yield f"sqlite:///{target}"
    else:
        with postgres_database(template=request.getfixturevalue("postgres_template")) as url:
            yield url


@pytest.fixture
def policy() -> PromotionPolicy:
    return PromotionPolicy(protected_aliases=frozenset({"production"}), promoter_token=PROMOTER_TOKEN)


@pytest.fixture
def artifacts_root(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def registry(registry_url: str, artifacts_root: Path, policy: PromotionPolicy) -> Iterator[ModelRegistry]:
    """A registry with no plugins loaded, a promoter token configured and no role."""
    with ModelRegistry.open(
        registry_url, artifacts_root=artifacts_root, policy=policy, plugins=PluginHost()
    ) as reg:
        yield reg


@pytest.fixture
def model_dir(tmp_path: Path) -> Callable[..., Path]:
    """Factory: model_dir(seed=0) -> a fresh model directory."""
    counter = iter(range(1_000_000))

    def make(seed: int = 0) -> Path:
        return write_model_dir(tmp_path / f"model-{next(counter)}", seed)

    return make
