"""Alembic migrations: they build the schema the ORM expects, and undo it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.script import ScriptDirectory
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect

from app.db.migrate import alembic_config, downgrade_base, upgrade_head
from app.db.tables import Base

TABLES = {"tenants", "api_keys", "tasks", "examples", "adapter_versions"}
INDEXED = [("api_keys", "tenant_id"), ("tasks", "tenant_id"), ("examples", "task_id"), ("adapter_versions", "task_id")]


@pytest.fixture
def engine(empty_database_url: str) -> Iterator[Engine]:
    engine = create_engine(empty_database_url)
    yield engine
    engine.dispose()


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def _revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def test_upgrade_head_creates_the_tables(empty_database_url: str, engine: Engine) -> None:
    assert _tables(engine) == set()
    upgrade_head(empty_database_url)
    assert _tables(engine) == TABLES
    assert _revision(engine) == ScriptDirectory.from_config(alembic_config(empty_database_url)).get_current_head()


def test_upgrade_head_is_idempotent(empty_database_url: str, engine: Engine) -> None:
    upgrade_head(empty_database_url)
    upgrade_head(empty_database_url)
    assert _tables(engine) == TABLES


def test_orm_metadata_matches_the_migrated_schema(empty_database_url: str, engine: Engine) -> None:
    upgrade_head(empty_database_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diffs = compare_metadata(context, Base.metadata)
    assert diffs == []


def test_downgrade_removes_everything_and_upgrade_works_again(empty_database_url: str, engine: Engine) -> None:
    upgrade_head(empty_database_url)
    downgrade_base(empty_database_url)
    assert _tables(engine) == set()
    assert _revision(engine) is None
    upgrade_head(empty_database_url)
    assert _tables(engine) == TABLES


def test_constraint_names_follow_the_convention(empty_database_url: str, engine: Engine) -> None:
    upgrade_head(empty_database_url)
    inspector = inspect(engine)
    for table in TABLES:
        assert inspector.get_pk_constraint(table)["name"] == f"pk_{table}"
    foreign_keys = {fk["name"] for table in TABLES for fk in inspector.get_foreign_keys(table)}
    assert foreign_keys == {
        "fk_api_keys_tenant_id_tenants",
        "fk_tasks_tenant_id_tenants",
        "fk_examples_task_id_tasks",
        "fk_adapter_versions_task_id_tasks",
    }
    unique = {uq["name"] for table in TABLES for uq in inspector.get_unique_constraints(table)}
    assert unique == {"uq_api_keys_key_hash", "uq_adapter_versions_task_id_version"}
    indexes = {ix["name"] for table in TABLES for ix in inspector.get_indexes(table)}
    assert {f"ix_{table}_{column}" for table, column in INDEXED} <= indexes


def test_metadata_names_follow_the_convention() -> None:
    """The ORM side (what autogenerate would emit) uses the same names as the migration."""
    names = {c.name for table in Base.metadata.tables.values() for c in table.constraints}
    assert {"pk_tasks", "pk_examples", "fk_examples_task_id_tasks", "uq_adapter_versions_task_id_version"} <= names
