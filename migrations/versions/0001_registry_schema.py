"""Create the model registry: registered models, versions with lineage, aliases and the alias audit log.

Why: shopscore versions every trained model in SQL (MLflow-like: model -> versions -> aliases) so that
serving can resolve `production` to one exact artifact and every alias move is audited. Version numbers
come from `registered_model.next_version`, bumped inside the registering transaction; the unique
(model_id, version) constraint is the backstop. `alias_event` is append-only, enforced by triggers on both
SQLite and PostgreSQL, because an audit log that can be edited is not one.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_APPEND_ONLY_MESSAGE = "alias_event is append-only: audit rows cannot be updated or deleted"


def upgrade() -> None:
    op.create_table(
        "registered_model",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("next_version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registered_model")),
        sa.UniqueConstraint("name", name=op.f("uq_registered_model_name")),
    )
    op.create_table(
        "model_version",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("artifact_uri", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="ready", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.CheckConstraint("version > 0", name=op.f("ck_model_version_version_positive")),
        sa.CheckConstraint("status IN ('ready', 'archived')", name=op.f("ck_model_version_status_known")),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["registered_model.id"],
            name=op.f("fk_model_version_model_id_registered_model"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_version")),
        sa.UniqueConstraint("model_id", "version", name=op.f("uq_model_version_model_id_version")),
    )
    op.create_table(
        "lineage",
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("feast_project", sa.String(length=128), nullable=False),
        sa.Column("feature_service", sa.String(length=128), nullable=False),
        sa.Column("horizon_days", sa.Integer(), nullable=False),
        sa.Column("data_fingerprint", sa.String(length=128), nullable=False),
        sa.Column("code_version", sa.String(length=64), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.CheckConstraint("horizon_days > 0", name=op.f("ck_lineage_horizon_positive")),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_version.id"],
            name=op.f("fk_lineage_model_version_id_model_version"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_version_id", name=op.f("pk_lineage")),
    )
    op.create_index(op.f("ix_lineage_feature_service"), "lineage", ["feature_service"])
    op.create_index(op.f("ix_lineage_horizon_days"), "lineage", ["horizon_days"])
    op.create_index(op.f("ix_lineage_data_fingerprint"), "lineage", ["data_fingerprint"])
    op.create_table(
        "model_alias",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["registered_model.id"],
            name=op.f("fk_model_alias_model_id_registered_model"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["model_id", "version"],
            ["model_version.model_id", "model_version.version"],
            name=op.f("fk_model_alias_model_id_version_model_version"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("model_id", "alias", name=op.f("pk_model_alias")),
    )
    op.create_table(
        "alias_event",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("from_version", sa.Integer(), nullable=True),
        sa.Column("to_version", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("forced", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("action IN ('set', 'rollback')", name=op.f("ck_alias_event_action_known")),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["registered_model.id"],
            name=op.f("fk_alias_event_model_id_registered_model"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alias_event")),
    )
    op.create_index(op.f("ix_alias_event_model_id_alias_id"), "alias_event", ["model_id", "alias", "id"])
    _create_append_only_triggers()


def downgrade() -> None:
    _drop_append_only_triggers()
    op.drop_index(op.f("ix_alias_event_model_id_alias_id"), table_name="alias_event")
    op.drop_table("alias_event")
    op.drop_table("model_alias")
    op.drop_index(op.f("ix_lineage_data_fingerprint"), table_name="lineage")
    op.drop_index(op.f("ix_lineage_horizon_days"), table_name="lineage")
    op.drop_index(op.f("ix_lineage_feature_service"), table_name="lineage")
    op.drop_table("lineage")
    op.drop_table("model_version")
    op.drop_table("registered_model")


def _create_append_only_triggers() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER trg_alias_event_no_{verb.lower()} BEFORE {verb} ON alias_event "
                f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY_MESSAGE}'); END"
            )
    elif dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION alias_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{_APPEND_ONLY_MESSAGE}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER trg_alias_event_append_only BEFORE UPDATE OR DELETE ON alias_event "
            "FOR EACH ROW EXECUTE FUNCTION alias_event_append_only()"
        )


def _drop_append_only_triggers() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS trg_alias_event_no_update")
        op.execute("DROP TRIGGER IF EXISTS trg_alias_event_no_delete")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS trg_alias_event_append_only ON alias_event")
        op.execute("DROP FUNCTION IF EXISTS alias_event_append_only()")
