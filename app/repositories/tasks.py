"""Tasks, their support examples and their adapter versions, always scoped to a tenant."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from app.db.tables import AdapterVersion, Example, Task


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

    def list(self, tenant_id: str, limit: int, offset: int) -> Sequence[Task]:
        statement = (
            select(Task).where(Task.tenant_id == tenant_id).order_by(Task.created_at, Task.id).limit(limit).offset(offset)
        )
        return self.session.scalars(statement).all()

    def count(self, tenant_id: str) -> int:
        return self.session.scalar(select(func.count()).select_from(Task).where(Task.tenant_id == tenant_id)) or 0

    def delete(self, task: Task) -> None:
        # Explicit child deletes: correct even where the database ignores ON DELETE CASCADE.
        for table in (AdapterVersion, Example):
            self.session.execute(delete(table).where(table.task_id == task.id))
        self.session.delete(task)
        self.session.flush()

    def bump_version(self, task: Task) -> int:
        task.version += 1
        self.session.flush()
        return task.version

    # --- examples ---------------------------------------------------------------
    def add_examples(self, task_id: str, version: int, rows: Sequence[tuple[str, str, bytes, str]]) -> None:
        """rows: (text, label, embedding bytes, encoder fingerprint)."""
        self.session.add_all(
            Example(task_id=task_id, text=t, label=l, version_added=version, embedding=e, embedding_fingerprint=f)
            for t, l, e, f in rows
        )
        self.session.flush()

    def examples(self, task_id: str, up_to_version: int) -> Sequence[Example]:
        statement = (
            select(Example)
            .where(Example.task_id == task_id, Example.version_added <= up_to_version)
            .order_by(Example.id)
        )
        return self.session.scalars(statement).all()

    def count_examples(self, task_id: str) -> int:
        statement = select(func.count()).select_from(Example).where(Example.task_id == task_id)
        return self.session.scalar(statement) or 0

    def set_embeddings(self, updates: Sequence[tuple[int, bytes]], fingerprint: str) -> None:
        for example_id, data in updates:
            self.session.execute(
                update(Example)
                .where(Example.id == example_id)
                .values(embedding=data, embedding_fingerprint=fingerprint)
            )

    # --- adapters ---------------------------------------------------------------
    def add_adapter(self, adapter: AdapterVersion) -> None:
        self.session.add(adapter)
        self.session.flush()

    def adapter(self, task_id: str, version: int) -> AdapterVersion | None:
        statement = select(AdapterVersion).where(AdapterVersion.task_id == task_id, AdapterVersion.version == version)
        return self.session.scalars(statement).first()

    def replace_adapter_tensors(self, row: AdapterVersion, tensors: bytes, fingerprint: str, adapted_ms: float) -> None:
        row.tensors, row.encoder_fingerprint, row.adapted_ms = tensors, fingerprint, adapted_ms
        self.session.flush()
