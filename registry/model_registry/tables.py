"""ORM mapping of the registry schema. The schema itself is created only by the Alembic migrations in
`migrations/` (`shopscore db upgrade`); a test checks that this module and the migrated schema agree.

registered_model 1-n model_version 1-1 lineage
registered_model 1-n model_alias   (each alias points at one version of the same model)
registered_model 1-n alias_event   (append-only audit log of alias moves; triggers refuse UPDATE/DELETE)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Constraint names are part of the schema: migrations refer to them by name to alter or drop them later.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite would otherwise hand back naive datetimes)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"refusing naive datetime {value!r}: pass a timezone-aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


# Shared column types, so the same thing is spelled the same way in every table.
IntPK = Annotated[int, mapped_column(sa.Integer, primary_key=True, autoincrement=True)]
Name = Annotated[str, mapped_column(sa.String(128))]
Timestamp = Annotated[datetime, mapped_column(UTCDateTime(), default=utcnow)]
Json = Annotated[dict[str, Any], mapped_column(sa.JSON)]


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class RegisteredModelRow(Base):
    __tablename__ = "registered_model"

    id: Mapped[IntPK]
    name: Mapped[Name] = mapped_column(unique=True)
    # The number the next registered version gets. Incremented by UPDATE ... RETURNING inside the
    # registering transaction, which also row-locks the model, so concurrent registrations serialise here.
    next_version: Mapped[int] = mapped_column(server_default=sa.text("1"))
    created_at: Mapped[Timestamp]

    versions: Mapped[list[ModelVersionRow]] = relationship(back_populates="model", lazy="raise")


class ModelVersionRow(Base):
    __tablename__ = "model_version"
    __table_args__ = (
        # Backstop for the counter: two rows with the same number can never both commit.
        sa.UniqueConstraint("model_id", "version"),
        sa.CheckConstraint("version > 0", name="version_positive"),
        sa.CheckConstraint("status IN ('ready', 'archived')", name="status_known"),
    )

    id: Mapped[IntPK]
    model_id: Mapped[int] = mapped_column(sa.ForeignKey("registered_model.id", ondelete="RESTRICT"))
    version: Mapped[int]
    artifact_uri: Mapped[str] = mapped_column(sa.Text)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    metrics: Mapped[Json]
    params: Mapped[Json]
    status: Mapped[str] = mapped_column(sa.String(16), server_default="ready")
    created_at: Mapped[Timestamp]
    created_by: Mapped[str | None] = mapped_column(sa.String(128))

    model: Mapped[RegisteredModelRow] = relationship(back_populates="versions", lazy="joined")
    lineage: Mapped[LineageRow] = relationship(lazy="joined")


class LineageRow(Base):
    """What a version was trained on. Columns that are queried (which versions use this FeatureService or
    this horizon, which were trained on this data) are real columns; everything else is in `details`."""

    __tablename__ = "lineage"
    __table_args__ = (sa.CheckConstraint("horizon_days > 0", name="horizon_positive"),)

    model_version_id: Mapped[int] = mapped_column(
        sa.ForeignKey("model_version.id", ondelete="CASCADE"), primary_key=True
    )
    feast_project: Mapped[str] = mapped_column(sa.String(128))
    feature_service: Mapped[str] = mapped_column(sa.String(128), index=True)
    horizon_days: Mapped[int] = mapped_column(index=True)
    data_fingerprint: Mapped[str] = mapped_column(sa.String(128), index=True)
    code_version: Mapped[str | None] = mapped_column(sa.String(64))
    details: Mapped[Json]


class ModelAliasRow(Base):
    __tablename__ = "model_alias"
    __table_args__ = (
        # Composite key to (model_id, version): an alias can only point at a version of its own model.
        sa.ForeignKeyConstraint(
            ["model_id", "version"],
            ["model_version.model_id", "model_version.version"],
            ondelete="RESTRICT",
        ),
    )

    model_id: Mapped[int] = mapped_column(
        sa.ForeignKey("registered_model.id", ondelete="RESTRICT"), primary_key=True
    )
    alias: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    version: Mapped[int]
    updated_at: Mapped[Timestamp]


class AliasEventRow(Base):
    """Append-only: rows are only inserted (the migration adds triggers that refuse UPDATE and DELETE)."""

    __tablename__ = "alias_event"
    __table_args__ = (
        sa.Index("ix_alias_event_model_id_alias_id", "model_id", "alias", "id"),
        sa.CheckConstraint("action IN ('set', 'rollback')", name="action_known"),
    )

    # Monotonic id = order of commits for one model, because moves of one model serialise on its row lock.
    id: Mapped[IntPK]
    model_id: Mapped[int] = mapped_column(sa.ForeignKey("registered_model.id", ondelete="RESTRICT"))
    alias: Mapped[str] = mapped_column(sa.String(64))
    from_version: Mapped[int | None]
    to_version: Mapped[int]
    action: Mapped[str] = mapped_column(sa.String(16))
    actor: Mapped[str] = mapped_column(sa.String(128))
    reason: Mapped[str] = mapped_column(sa.Text)
    forced: Mapped[bool] = mapped_column(server_default=sa.false())
    created_at: Mapped[Timestamp]
