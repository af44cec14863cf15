"""Table definitions (SQLAlchemy 2 declarative). Alembic migrations are the source of
truth for the schema; these classes mirror them and a test checks they agree."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, LargeBinary, MetaData, String, Text, UniqueConstraint
from sqlalchemy.sql.expression import false as sa_false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(moment: datetime) -> datetime:
    """Stored times are UTC; SQLite hands them back naive, so mark them as UTC again."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKey(Base):
    """Only a sha256 of the key is stored; the key itself is shown once, at creation."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer, default=1)
    oos_threshold_override: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    # Optimistic concurrency: every UPDATE or DELETE of a task says "WHERE version = <the
    # version this request read>", so a change that read a version another request has
    # meanwhile replaced fails (StaleDataError -> 409) instead of overwriting it: the guard
    # on every database (SQLite ignores SELECT ... FOR UPDATE, and a change gives its row
    # lock up while it adapts); the service sets the versions.
    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}


class Example(Base):
    """A support example; ``version_added`` says from which task version on it counts.
    Three kinds: labelled (in scope), ``out_of_scope`` (a negative, label "") and
    ``unlabelled`` (a text without a label that refines the prototypes, label "").

    The embedding is cached (float32 bytes) with the fingerprint of the encoder that
    made it, so appending examples re-embeds only the new texts."""

    __tablename__ = "examples"
    __table_args__ = (UniqueConstraint("task_id", "number", name="uq_examples_task_id_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    # What the API calls the example's id: 1, 2, ... within the task. The primary key is
    # one counter for all tenants, so showing it would tell a tenant how much others store.
    number: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    label: Mapped[str] = mapped_column(String(200))
    version_added: Mapped[int] = mapped_column(Integer)
    out_of_scope: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    unlabelled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    embedding_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)

    @property
    def kind(self) -> str:
        """``labelled``, ``out_of_scope`` or ``unlabelled``."""
        return "out_of_scope" if self.out_of_scope else "unlabelled" if self.unlabelled else "labelled"


class AdapterVersion(Base):
    """One immutable task version: its example set (ids), its labels with their
    descriptions, the adapter (safetensors bytes), its calibration and provenance."""

    __tablename__ = "adapter_versions"
    __table_args__ = (UniqueConstraint("task_id", "version", name="uq_adapter_versions_task_id_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    format_version: Mapped[int] = mapped_column(Integer)
    encoder_fingerprint: Mapped[str] = mapped_column(String(64))
    labels: Mapped[list[str]] = mapped_column(JSON)
    num_examples: Mapped[int] = mapped_column(Integer)
    num_unlabelled: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    adapted_ms: Mapped[float] = mapped_column(Float)
    # Deferred: predict reads a version row on every call but needs these only on a
    # cache miss, so they are loaded on first access instead of with the row.
    tensors: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    example_ids: Mapped[list[int] | None] = mapped_column(JSON, nullable=True, deferred=True)
    label_descriptions: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
    temperature: Mapped[float | None] = mapped_column(Float, nullable=True)
    oos_threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    change: Mapped[str | None] = mapped_column(String(32), nullable=True)
    parent_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
