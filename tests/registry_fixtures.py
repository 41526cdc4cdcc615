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
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from safetensors.numpy import save_file

from registry.db import migrate
from registry.db.hooks import bare_plugin_manager
from registry.db.promotion import PromotionPolicy
from registry.db.store import ModelRegistry

POSTGRES_ADMIN_URL = os.environ.get(
    "SHOPSCORE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
PROMOTER_TOKEN = "test-promoter-token"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@cache
def postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used, or None when it can."""
    engine = sa.create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return None
    except Exception as exc:  # any failure to connect means: skip, and say why
        return f"PostgreSQL unreachable at {POSTGRES_ADMIN_URL} ({type(exc).__name__}); set SHOPSCORE_TEST_POSTGRES_URL"
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
        registry_url, artifacts_root=artifacts_root, policy=policy, plugin_manager=bare_plugin_manager()
    ) as reg:
        yield reg


def write_model_dir(path: Path, seed: int = 0) -> Path:
    """A directory shaped like save_pretrained's output: config.json + a real safetensors file."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(f'{{"encoder": "mlp", "head": "purchase", "seed": {seed}}}')
    weights = np.random.default_rng(seed).standard_normal((4, 3)).astype(np.float32)
    save_file({"encoder.weight": weights}, str(path / "model.safetensors"))
    return path


@pytest.fixture
def model_dir(tmp_path: Path) -> Callable[..., Path]:
    """Factory: model_dir(seed=0) -> a fresh model directory."""
    counter = iter(range(1_000_000))

    def make(seed: int = 0) -> Path:
        return write_model_dir(tmp_path / f"model-{next(counter)}", seed)

    return make


def make_lineage(**overrides: Any) -> dict[str, Any]:
    lineage: dict[str, Any] = {
        "feast_project": "shopscore",
        "feature_service": "purchase_mlp_v1",
        "feature_refs": ["user_activity:views_7d", "user_activity:carts_7d"],
        "train_cutoffs": ["2024-01-01T00:00:00+00:00", "2024-01-08T00:00:00+00:00"],
        "valid_cutoff": "2024-01-15T00:00:00+00:00",
        "test_cutoff": "2024-01-22T00:00:00+00:00",
        "horizon_days": 7,
        "data_fingerprint": "sha256:" + "ab" * 16,
        "encoder": "mlp",
        "head": "purchase",
        "plugins": {"mlp": "0.1.0", "purchase": "0.1.0"},
        "device": "cpu",
        "code_version": "0123abcd",
    }
    lineage.update(overrides)
    return lineage


def register(
    registry: ModelRegistry, model: str, source: Path, *, pr_auc: float = 0.5, **lineage_overrides: Any
) -> Any:
    """Register `source` as the next version of `model` with typical lineage and metrics."""
    return registry.register_version(
        model,
        source,
        lineage=make_lineage(**lineage_overrides),
        metrics={"test_pr_auc": pr_auc, "test_roc_auc": 0.7},
        params={"lr": 0.001, "epochs": 3},
        created_by="tester",
    )
