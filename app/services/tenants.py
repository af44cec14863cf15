"""Tenant logic (admin only: creation, listing, API keys issued and revoked, deletion)
and API-key authentication.

A tenant may hold several keys, so a key is rotated without downtime: issue a new one,
move the clients to it, revoke the old one."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from app.db.session import UnitOfWork
from app.db.tables import ApiKey, Tenant, as_utc
from app.errors import InvalidInput, NotFound, Unauthorized
from app.repositories.tenants import TenantRepository
from app.security import hash_api_key, new_api_key


@dataclass(frozen=True)
class NewTenant:
    id: str
    name: str
    api_key: str


@dataclass(frozen=True)
class KeyView:
    id: int
    prefix: str
    created_at: datetime


@dataclass(frozen=True)
class TenantView:
    id: str
    name: str
    created_at: datetime
    num_tasks: int


class TenantService:
    def __init__(self, uow: UnitOfWork, forget_tasks: Callable[[list[str]], None] = lambda ids: None) -> None:
        """``forget_tasks`` drops deleted tasks' adapters from the server's cache."""
        assert uow.session is not None
        self.uow = uow
        self.tenants = TenantRepository(uow.session)
        self.forget_tasks = forget_tasks

    def list(self, limit: int, offset: int) -> tuple[list[TenantView], int]:
        rows = self.tenants.list(limit, offset)
        return [TenantView(t.id, t.name, as_utc(t.created_at), n) for t, n in rows], self.tenants.count()

    def keys(self, tenant_id: str) -> list[KeyView]:
        self._tenant(tenant_id)
        return [_key_view(key) for key in self.tenants.keys(tenant_id)]

    def issue_key(self, tenant_id: str) -> tuple[KeyView, str]:
        """A new key for the tenant (its other keys keep working); the key is shown once."""
        self._tenant(tenant_id)
        key = new_api_key()
        row = self.tenants.add_key(tenant_id, hash_api_key(key), key[:12])
        self.uow.commit()
        return _key_view(row), key

    def revoke_key(self, tenant_id: str, key_id: int) -> None:
        keys = {key.id: key for key in self.tenants.keys(self._tenant(tenant_id).id)}
        if key_id not in keys:
            raise NotFound(f"tenant {tenant_id} has no key {key_id}")
        if len(keys) == 1:
            raise InvalidInput("this is the tenant's last key: issue a new one first, or delete the tenant")
        self.tenants.delete_key(keys[key_id])
        self.uow.commit()

    def delete(self, tenant_id: str) -> None:
        """The tenant, its keys and every task with its versions and examples."""
        task_ids = self.tenants.delete(self._tenant(tenant_id))
        self.uow.commit()
        self.forget_tasks(task_ids)

    def _tenant(self, tenant_id: str) -> Tenant:
        tenant = self.tenants.get(tenant_id)
        if tenant is None:
            raise NotFound(f"tenant {tenant_id} not found")
        return tenant

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
        tenant_id = tenant.id
        # The lookup's transaction ends here: a request that waits later (at its task's
        # gate, on the encoder) then holds no pooled connection while it waits.
        self.uow.release()
        return tenant_id


def _key_view(key: ApiKey) -> KeyView:
    return KeyView(key.id, key.prefix, as_utc(key.created_at))
