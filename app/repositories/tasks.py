"""Tasks, their support examples and their versions, always scoped to a tenant."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, undefer

from app.db.tables import AdapterVersion, Example, Task


def delete_task_children(session: Session, task_ids: Sequence[str]) -> None:
    """Delete these tasks' versions and examples (explicit child deletes: correct even
    where the database ignores ON DELETE CASCADE), in chunks under SQLite's bound-parameter limit."""
    for start in range(0, len(task_ids), 900):
        chunk = list(task_ids[start : start + 900])
        for table in (AdapterVersion, Example):
            session.execute(delete(table).where(table.task_id.in_(chunk)))


class TaskRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, task_id: str, tenant_id: str, name: str) -> Task:
        task = Task(id=task_id, tenant_id=tenant_id, name=name, version=1)
        self.session.add(task)
        self.session.flush()
        return task

    def get(self, tenant_id: str, task_id: str, for_update: bool = False) -> Task | None:
        """The tenant's task, or None (another tenant's task is None too)."""
        statement = select(Task).where(Task.id == task_id, Task.tenant_id == tenant_id)
        if for_update:
            statement = statement.with_for_update()
        return self.session.scalars(statement).first()

    def list(self, tenant_id: str, limit: int, offset: int) -> list[tuple[Task, AdapterVersion]]:
        """A page of the tenant's tasks, each with its current version, in one statement (so a
        task deleted meanwhile is either listed whole or not at all)."""
        statement = (
            select(Task, AdapterVersion)
            .join(AdapterVersion, (AdapterVersion.task_id == Task.id) & (AdapterVersion.version == Task.version))
            .where(Task.tenant_id == tenant_id)
            .options(undefer(AdapterVersion.example_ids))
            .order_by(Task.created_at, Task.id).limit(limit).offset(offset)
        )
        return [(task, version) for task, version in self.session.execute(statement)]

    def count(self, tenant_id: str) -> int:
        return self.session.scalar(select(func.count()).select_from(Task).where(Task.tenant_id == tenant_id)) or 0

    def delete(self, task: Task) -> None:
        delete_task_children(self.session, [task.id])
        self.session.delete(task)
        self.session.flush()

    def latest_version(self, task_id: str) -> int:
        statement = select(func.max(AdapterVersion.version)).where(AdapterVersion.task_id == task_id)
        return self.session.scalar(statement) or 0

    # --- examples ---------------------------------------------------------------
    def new_examples(self, task_id: str, version: int, rows: Sequence[tuple[str, str, str]]) -> list[Example]:
        """Example rows not yet in the session (no ids, no embeddings): rows are (text,
        label, kind), kind one of ``labelled``, ``out_of_scope``, ``unlabelled``."""
        return [Example(task_id=task_id, text=t, label=l, out_of_scope=k == "out_of_scope", unlabelled=k == "unlabelled",
                        version_added=version) for t, l, k in rows]

    def save_examples(self, rows: Sequence[Example]) -> None:
        """Insert new example rows of one task; they get their ids and their numbers within
        the task (after its highest; a concurrent writer fails on the unique pair)."""
        if rows:
            task_id = rows[0].task_id
            latest = self.session.scalar(select(func.max(Example.number)).where(Example.task_id == task_id)) or 0
            for number, row in enumerate(rows, start=latest + 1):
                row.number = number
        self.session.add_all(rows)
        self.session.flush()

    def examples_by_ids(self, task_id: str, ids: Sequence[int]) -> list[Example]:
        """The task's examples with these ids, in the order of ``ids``."""
        if not ids:
            return []
        found: dict[int, Example] = {}
        for start in range(0, len(ids), 900):  # stay under SQLite's bound-parameter limit
            chunk = list(ids[start : start + 900])
            statement = select(Example).where(Example.task_id == task_id, Example.id.in_(chunk))
            found.update((row.id, row) for row in self.session.scalars(statement))
        return [found[i] for i in ids if i in found]

    # --- versions ---------------------------------------------------------------
    def add_version(self, row: AdapterVersion) -> None:
        self.session.add(row)
        self.session.flush()

    def version(self, task_id: str, version: int) -> AdapterVersion | None:
        statement = select(AdapterVersion).where(AdapterVersion.task_id == task_id, AdapterVersion.version == version)
        return self.session.scalars(statement).first()

    def versions(self, task_id: str) -> Sequence[AdapterVersion]:
        statement = select(AdapterVersion).where(AdapterVersion.task_id == task_id).order_by(AdapterVersion.version)
        return self.session.scalars(statement).all()

    def replace_adapter(self, row: AdapterVersion, tensors: bytes, fingerprint: str, format_version: int,
                        temperature: float, oos_threshold: float | None) -> None:
        row.tensors, row.encoder_fingerprint, row.format_version = tensors, fingerprint, format_version
        row.temperature, row.oos_threshold = temperature, oos_threshold
        self.session.flush()
