"""Alembic migrations: they build the schema the ORM expects, and undo it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.script import ScriptDirectory
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect
from sqlalchemy.orm import Session

from app.db.migrate import alembic_config, downgrade_base, upgrade_head
from app.db.tables import Base
from app.repositories.tasks import TaskRepository

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


def _insert_tasks(engine: Engine, overrides: dict[str, float | None]) -> None:
    """Tenant ``t1`` with one task per key (id = name = the key; its threshold override), by SQL."""
    from datetime import datetime, timezone

    from sqlalchemy import text

    now = datetime.now(timezone.utc)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO tenants (id, name, created_at) VALUES ('t1', 'acme', :now)"), {"now": now})
        for task_id, override in overrides.items():
            connection.execute(
                text("INSERT INTO tasks (id, tenant_id, name, version, created_at, updated_at, oos_threshold_override)"
                     " VALUES (:id, 't1', :id, 1, :now, :now, :override)"),
                {"id": task_id, "now": now, "override": override},
            )


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
    assert unique == {"uq_api_keys_key_hash", "uq_adapter_versions_task_id_version", "uq_examples_task_id_number"}
    indexes = {ix["name"] for table in TABLES for ix in inspector.get_indexes(table)}
    assert {f"ix_{table}_{column}" for table, column in INDEXED} <= indexes


def test_metadata_names_follow_the_convention() -> None:
    """The ORM side (what autogenerate would emit) uses the same names as the migration."""
    names = {c.name for table in Base.metadata.tables.values() for c in table.constraints}
    assert {"pk_tasks", "pk_examples", "fk_examples_task_id_tasks", "uq_adapter_versions_task_id_version"} <= names


def test_upgrade_from_0001_backfills_the_example_ids_of_existing_versions(empty_database_url: str, engine: Engine) -> None:
    """Versions made before 0002 get as example set every example added up to them."""
    from datetime import datetime, timezone

    from alembic import command
    from sqlalchemy import select, text

    from app.db.tables import AdapterVersion, Example, Task

    config = alembic_config(empty_database_url)
    command.upgrade(config, "0001")
    assert _revision(engine) == "0001"
    now = datetime.now(timezone.utc)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO tenants (id, name, created_at) VALUES ('t1', 'acme', :now)"), {"now": now})
        for task_id, version in (("task-a", 3), ("task-b", 1)):
            connection.execute(
                text("INSERT INTO tasks (id, tenant_id, name, version, created_at, updated_at)"
                     " VALUES (:id, 't1', :id, :version, :now, :now)"),
                {"id": task_id, "version": version, "now": now},
            )
        rows = [("task-a", "what is my balance", "balance", 1), ("task-b", "hello", "greet", 1),
                ("task-a", "i lost my card", "lost_card", 1), ("task-a", "send money", "transfer", 2),
                ("task-b", "bye", "farewell", 1), ("task-a", "move money to savings", "transfer", 3)]
        for task_id, example_text, label, version_added in rows:
            connection.execute(
                text("INSERT INTO examples (task_id, text, label, version_added) VALUES (:t, :x, :l, :v)"),
                {"t": task_id, "x": example_text, "l": label, "v": version_added},
            )
        for task_id, version in (("task-a", 1), ("task-a", 2), ("task-a", 3), ("task-b", 1)):
            connection.execute(
                text("INSERT INTO adapter_versions (task_id, version, format_version, encoder_fingerprint, labels,"
                     " num_examples, adapted_ms, tensors, created_at)"
                     " VALUES (:t, :v, 1, 'enc', :labels, 1, 1.0, :tensors, :now)"),
                {"t": task_id, "v": version, "labels": '["a", "b"]', "tensors": b"\x00\x01", "now": now},
            )

    command.upgrade(config, "head")
    assert _revision(engine) == ScriptDirectory.from_config(config).get_current_head()
    versions, examples, tasks = AdapterVersion.__table__, Example.__table__, Task.__table__
    with engine.connect() as connection:
        ids = {(r.task_id, r.text): r.id for r in connection.execute(select(examples.c.id, examples.c.task_id,
                                                                            examples.c.text))}
        backfilled = {(r.task_id, r.version): r for r in connection.execute(select(versions))}
        out_of_scope = connection.execute(select(examples.c.out_of_scope)).scalars().all()
        overrides = connection.execute(select(tasks.c.oos_threshold_override)).scalars().all()

    def expected(task_id: str, *texts: str) -> list[int]:
        return sorted(ids[(task_id, t)] for t in texts)

    assert backfilled[("task-a", 1)].example_ids == expected("task-a", "what is my balance", "i lost my card")
    assert backfilled[("task-a", 2)].example_ids == expected("task-a", "what is my balance", "i lost my card",
                                                             "send money")
    assert backfilled[("task-a", 3)].example_ids == expected("task-a", "what is my balance", "i lost my card",
                                                             "send money", "move money to savings")
    assert backfilled[("task-b", 1)].example_ids == expected("task-b", "hello", "bye")
    for row in backfilled.values():  # the other new columns start empty
        assert (row.label_descriptions, row.temperature, row.oos_threshold, row.change, row.parent_version) == (
            None, None, None, None, None)
        assert row.tensors == b"\x00\x01" and row.labels == ["a", "b"]
    assert out_of_scope == [False] * len(rows) and overrides == [None, None]


def test_a_task_made_before_0002_is_served_after_the_upgrade(empty_database_url: str, engine: Engine) -> None:
    """Its versions' example sets are backfilled and its adapter (of another encoder) is rebuilt."""
    from datetime import datetime, timezone

    from alembic import command
    from fastapi.testclient import TestClient
    from sqlalchemy import text

    from app.client import FewShotClient
    from app.main import create_app
    from app.security import hash_api_key
    from tests.conftest import make_settings
    from tests.fakes import FakeEncoder

    command.upgrade(alembic_config(empty_database_url), "0001")
    now = datetime.now(timezone.utc)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO tenants (id, name, created_at) VALUES ('t1', 'acme', :now)"), {"now": now})
        connection.execute(text("INSERT INTO api_keys (tenant_id, key_hash, prefix, created_at)"
                                " VALUES ('t1', :hash, 'fsk_old', :now)"), {"hash": hash_api_key("fsk_old"), "now": now})
        connection.execute(text("INSERT INTO tasks (id, tenant_id, name, version, created_at, updated_at)"
                                " VALUES ('old', 't1', 'old', 2, :now, :now)"), {"now": now})
        for example_text, label, version_added in [("play some music", "music", 1), ("play a song", "music", 1),
                                                   ("set an alarm", "alarm", 1), ("wake me up with an alarm", "alarm", 1),
                                                   ("weather today", "weather", 2), ("will it rain", "weather", 2)]:
            connection.execute(text("INSERT INTO examples (task_id, text, label, version_added)"
                                    " VALUES ('old', :x, :l, :v)"), {"x": example_text, "l": label, "v": version_added})
        for version, labels in ((1, '["alarm", "music"]'), (2, '["alarm", "music", "weather"]')):
            connection.execute(text("INSERT INTO adapter_versions (task_id, version, format_version, encoder_fingerprint,"
                                    " labels, num_examples, adapted_ms, tensors, created_at)"
                                    " VALUES ('old', :v, 1, 'retired-encoder', :labels, 4, 1.0, :tensors, :now)"),
                               {"v": version, "labels": labels, "tensors": b"stale", "now": now})

    app = create_app(make_settings(empty_database_url), encoder=FakeEncoder())  # migrates to head at start
    with TestClient(app) as http, FewShotClient("http://testserver", api_key="fsk_old", http_client=http) as fewshot:
        assert fewshot.get_task("old")["labels"] == ["alarm", "music", "weather"]
        assert [len(fewshot.list_examples("old", version=v)["examples"]) for v in (1, 2)] == [4, 6]
        texts = ["play music please", "will it rain tomorrow"]
        assert [p["label"] for p in fewshot.predict("old", texts)["predictions"]] == ["music", "weather"]
        pinned = fewshot.predict("old", texts, version=1)["predictions"]
        assert all(p["top_k"][0]["label"] in ("alarm", "music") for p in pinned)
        assert fewshot.add_examples("old", [("cancel my alarm", "alarm")])["num_examples"] == 7


def test_upgrade_to_0003_clears_overrides_on_the_cosine_scale(empty_database_url: str, engine: Engine) -> None:
    from alembic import command
    from sqlalchemy import text

    config = alembic_config(empty_database_url)
    command.upgrade(config, "0002")
    _insert_tasks(engine, {"strict": 0.5, "plain": None})
    command.upgrade(config, "0003")
    with engine.connect() as connection:
        overrides = connection.execute(text("SELECT oos_threshold_override FROM tasks")).scalars().all()
    assert overrides == [None, None]



def test_downgrade_from_0004_drops_unlabelled_texts_from_every_version(empty_database_url: str, engine: Engine) -> None:
    """Below 0004 an unlabelled text would read as an in-scope example labelled ""."""
    import json

    from alembic import command
    from fastapi.testclient import TestClient
    from sqlalchemy import text

    from app.main import create_app
    from tests.conftest import make_settings
    from tests.fakes import FakeEncoder
    from tests.helpers import UNLABELLED_POOL, create_tenant, examples

    upgrade_head(empty_database_url)
    with TestClient(create_app(make_settings(empty_database_url), encoder=FakeEncoder())) as client:
        tenant = create_tenant(client)
        body = {"name": "t", "examples": examples(), "unlabelled": UNLABELLED_POOL[:2]}
        assert client.post("/v1/tasks", json=body, headers=tenant).status_code == 201
    command.downgrade(alembic_config(empty_database_url), "0003")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM examples")).scalar() == len(examples())
        ids = connection.execute(text("SELECT example_ids FROM adapter_versions")).scalar()
        kept = set(connection.execute(text("SELECT id FROM examples")).scalars())
    assert set(ids if isinstance(ids, list) else json.loads(ids)) == kept
    assert "unlabelled" not in {c["name"] for c in inspect(engine).get_columns("examples")}


def test_upgrade_to_0005_keeps_the_ids_clients_have_seen(empty_database_url: str, engine: Engine) -> None:
    """Existing examples keep their (global) id as their number, so a saved id still means the
    same example; a later example gets the number after its task's highest."""
    from alembic import command
    from sqlalchemy import text

    config = alembic_config(empty_database_url)
    command.upgrade(config, "0004")
    _insert_tasks(engine, {"a": None, "b": None})
    with engine.begin() as connection:
        for example_id, task_id in ((5, "a"), (6, "b"), (9, "a"), (11, "b"), (12, "a")):
            connection.execute(text("INSERT INTO examples (id, task_id, text, label, version_added)"
                                    " VALUES (:id, :task, 'x', 'l', 1)"), {"id": example_id, "task": task_id})
    command.upgrade(config, "0005")
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT task_id, id, number FROM examples ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [("a", 5, 5), ("b", 6, 6), ("a", 9, 9), ("b", 11, 11), ("a", 12, 12)]
    assert not next(c for c in inspect(engine).get_columns("examples") if c["name"] == "number")["nullable"]
    with Session(engine) as session:
        repository = TaskRepository(session)
        added = repository.new_examples("a", 2, [("y", "l", "labelled"), ("z", "l", "labelled")])
        repository.save_examples(added)
        assert [row.number for row in added] == [13, 14]
        session.rollback()
    command.downgrade(config, "0004")
    assert "number" not in {c["name"] for c in inspect(engine).get_columns("examples")}


def test_concurrent_upgrades_of_one_database_all_succeed(empty_database_url: str, engine: Engine, tmp_path) -> None:
    """``serve --workers N`` (or scaled containers) migrate at once: none may crash on a
    table another just created. Four processes start upgrading together."""
    import subprocess
    import sys
    import time

    go = tmp_path / "go"
    script = ("import os, sys, time\n"
              "from app.db.migrate import upgrade_head\n"
              "while not os.path.exists(sys.argv[2]): time.sleep(0.005)\n"
              "upgrade_head(sys.argv[1])\n")
    processes = [subprocess.Popen([sys.executable, "-c", script, empty_database_url, str(go)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    time.sleep(3)  # let every process finish its imports and wait at the start line
    go.touch()
    results = [(p.wait(timeout=120), p.stderr.read()) for p in processes]
    assert [code for code, _ in results] == [0, 0, 0, 0], [err[-800:] for code, err in results if code]
    assert _tables(engine) == TABLES
    assert _revision(engine) == ScriptDirectory.from_config(alembic_config(empty_database_url)).get_current_head()
