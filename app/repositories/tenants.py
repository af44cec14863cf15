"""Tenants and their API keys."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.db.tables import ApiKey, Task, Tenant
from app.repositories.tasks import delete_task_children


class TenantRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, tenant_id: str, name: str, key_hash: str, key_prefix: str) -> Tenant:
        tenant = Tenant(id=tenant_id, name=name)
        self.session.add(tenant)
        self.session.flush()  # no ORM relationship orders the inserts, so the parent goes first
        self.add_key(tenant_id, key_hash, key_prefix)
        return tenant

    def add_key(self, tenant_id: str, key_hash: str, key_prefix: str) -> ApiKey:
        key = ApiKey(tenant_id=tenant_id, key_hash=key_hash, prefix=key_prefix)
        self.session.add(key)
        self.session.flush()
        return key

    def get(self, tenant_id: str) -> Tenant | None:
        return self.session.get(Tenant, tenant_id)

    def list(self, limit: int, offset: int) -> Sequence[tuple[Tenant, int]]:
        """Tenants, oldest first, each with its number of tasks."""
        tasks = select(Task.tenant_id, func.count().label("n")).group_by(Task.tenant_id).subquery()
        statement = (select(Tenant, func.coalesce(tasks.c.n, 0)).outerjoin(tasks, tasks.c.tenant_id == Tenant.id)
                     .order_by(Tenant.created_at, Tenant.id).limit(limit).offset(offset))
        return [(tenant, count) for tenant, count in self.session.execute(statement)]

    def count(self) -> int:
        return self.session.scalar(select(func.count()).select_from(Tenant)) or 0

    def keys(self, tenant_id: str) -> Sequence[ApiKey]:
        return self.session.scalars(select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.id)).all()

    def delete_key(self, key: ApiKey) -> None:
        self.session.delete(key)
        self.session.flush()

    def delete(self, tenant: Tenant) -> list[str]:
        """Delete the tenant with its keys and tasks (explicit child deletes: correct even where
        the database ignores ON DELETE CASCADE); returns the deleted tasks' ids."""
        task_ids = list(self.session.scalars(select(Task.id).where(Task.tenant_id == tenant.id)))
        delete_task_children(self.session, task_ids)
        self.session.execute(delete(Task).where(Task.tenant_id == tenant.id))
        self.session.execute(delete(ApiKey).where(ApiKey.tenant_id == tenant.id))
        self.session.delete(tenant)
        self.session.flush()
        return task_ids

    def by_key_hash(self, key_hash: str) -> Tenant | None:
        statement = select(Tenant).join(ApiKey, ApiKey.tenant_id == Tenant.id).where(ApiKey.key_hash == key_hash)
        return self.session.scalars(statement).first()
