"""Tenants and their API keys."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.tables import ApiKey, Tenant


class TenantRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, tenant_id: str, name: str, key_hash: str, key_prefix: str) -> Tenant:
        tenant = Tenant(id=tenant_id, name=name)
        self.session.add(tenant)
        self.session.flush()  # no ORM relationship orders the inserts, so the parent goes first
        self.session.add(ApiKey(tenant_id=tenant_id, key_hash=key_hash, prefix=key_prefix))
        self.session.flush()
        return tenant

    def by_key_hash(self, key_hash: str) -> Tenant | None:
        statement = select(Tenant).join(ApiKey, ApiKey.tenant_id == Tenant.id).where(ApiKey.key_hash == key_hash)
        return self.session.scalars(statement).first()
