"""``/v1/tenants``: the admin's calls (the admin key is required for every one)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from app.deps import get_tenant_service, require_admin
from app.schemas import (
    MAX_INT32, ApiKeyCreated, ApiKeyList, ApiKeyOut, TenantCreate, TenantCreated, TenantList, TenantOut,
    error_responses,
)
from app.services.tenants import TenantService

router = APIRouter(prefix="/v1/tenants", tags=["tenants"], dependencies=[Depends(require_admin)],
                   responses=error_responses(400, 401, 403, 404, 413, 422, 503))
Tenants = Annotated[TenantService, Depends(get_tenant_service)]


@router.post("", status_code=201, response_model=TenantCreated, summary="Create a tenant and its API key")
def create_tenant(body: TenantCreate, tenants: Tenants) -> TenantCreated:
    created = tenants.create(body.name)
    return TenantCreated(id=created.id, name=created.name, api_key=created.api_key)


@router.get("", response_model=TenantList, summary="List tenants (with their number of tasks)")
def list_tenants(tenants: Tenants, limit: Annotated[int, Query(ge=1, le=500)] = 100,
                 offset: Annotated[int, Query(ge=0, le=MAX_INT32)] = 0) -> TenantList:
    views, total = tenants.list(limit, offset)
    return TenantList(tenants=[TenantOut(**asdict(view)) for view in views], total=total)


@router.delete("/{tenant_id}", status_code=204, summary="Delete a tenant, its keys and all its tasks")
def delete_tenant(tenant_id: str, tenants: Tenants) -> Response:
    tenants.delete(tenant_id)
    return Response(status_code=204)


@router.get("/{tenant_id}/keys", response_model=ApiKeyList, summary="The tenant's API keys (ids and prefixes only)")
def list_keys(tenant_id: str, tenants: Tenants) -> ApiKeyList:
    return ApiKeyList(keys=[ApiKeyOut(**asdict(key)) for key in tenants.keys(tenant_id)])


@router.post("/{tenant_id}/keys", status_code=201, response_model=ApiKeyCreated,
             summary="Issue another API key (the others keep working until revoked)")
def issue_key(tenant_id: str, tenants: Tenants) -> ApiKeyCreated:
    key, secret = tenants.issue_key(tenant_id)
    return ApiKeyCreated(**asdict(key), api_key=secret)


@router.delete("/{tenant_id}/keys/{key_id}", status_code=204, summary="Revoke an API key (not the tenant's last)")
def revoke_key(tenant_id: str, key_id: Annotated[int, Path(ge=1, le=MAX_INT32)], tenants: Tenants) -> Response:
    tenants.revoke_key(tenant_id, key_id)
    return Response(status_code=204)
