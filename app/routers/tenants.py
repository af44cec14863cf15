from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from app.deps import get_tenant_service, require_admin
from app.schemas import ErrorBody, TenantCreate, TenantCreated
from app.services.tenants import TenantService

router = APIRouter(prefix="/v1/tenants", tags=["tenants"], responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}})


@router.post("", status_code=201, response_model=TenantCreated, dependencies=[Depends(require_admin)],
             summary="Create a tenant and its API key (admin key required)")
def create_tenant(body: TenantCreate, tenants: Annotated[TenantService, Depends(get_tenant_service)]) -> TenantCreated:
    created = tenants.create(body.name)
    return TenantCreated(id=created.id, name=created.name, api_key=created.api_key)
