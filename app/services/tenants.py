"""Tenant logic: creation (admin only) and API-key authentication."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from app.db.session import UnitOfWork
from app.errors import Unauthorized
from app.repositories.tenants import TenantRepository
from app.security import hash_api_key, new_api_key


@dataclass(frozen=True)
class NewTenant:
    id: str
    name: str
    api_key: str


class TenantService:
    def __init__(self, uow: UnitOfWork) -> None:
        assert uow.session is not None
        self.uow = uow
        self.tenants = TenantRepository(uow.session)

    def create(self, name: str) -> NewTenant:
        key = new_api_key()
        tenant = self.tenants.add(uuid.uuid4().hex, name, hash_api_key(key), key[:12])
        self.uow.commit()
        return NewTenant(tenant.id, tenant.name, key)

    def authenticate(self, api_key: str | None) -> str:
        """The tenant id for a valid key; 401 otherwise."""
        if not api_key:
            raise Unauthorized("missing API key: send 'Authorization: Bearer <api_key>'")
        tenant = self.tenants.by_key_hash(hash_api_key(api_key))
        if tenant is None:
            raise Unauthorized("invalid API key")
        return tenant.id
