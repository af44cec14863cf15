"""FastAPI dependencies: settings, the unit of work, the engine, authentication.

Those that do no I/O are ``async def``: FastAPI runs a plain ``def`` dependency in its
thread pool, one hand-off per dependency per request, which small predict requests
feel. Those that touch the database (the unit of work, the key lookup) stay ``def``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Request

from app.db.session import UnitOfWork
from app.errors import Forbidden, RateLimited, Unauthorized
from app.security import bearer_token, keys_match
from app.services.engine import AdaptationEngine
from app.services.tasks import TaskService
from app.services.tenants import TenantService
from app.settings import Settings


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_engine(request: Request) -> AdaptationEngine:
    return request.app.state.engine


def get_uow(request: Request) -> Iterator[UnitOfWork]:
    with UnitOfWork(request.app.state.session_factory) as uow:
        yield uow


AuthHeader = Annotated[str | None, Header(alias="Authorization", include_in_schema=False)]


async def require_admin(request: Request, authorization: AuthHeader = None) -> None:
    token = bearer_token(authorization)
    if token is None:
        raise Unauthorized("missing admin key: send 'Authorization: Bearer <admin key>'")
    if not keys_match(token, request.app.state.admin_key):
        raise Forbidden("this call needs the admin key")


async def require_metrics_key(request: Request, authorization: AuthHeader = None) -> None:
    """``GET /metrics`` is open unless ``FEWSHOT_METRICS_KEY`` is set (Prometheus sends it
    with ``authorization: {credentials: ...}`` in its scrape config)."""
    expected = request.app.state.settings.metrics_key
    if expected is None:
        return
    token = bearer_token(authorization)
    if token is None or not keys_match(token, expected.get_secret_value()):
        raise Unauthorized("the metrics need the metrics key: send 'Authorization: Bearer <FEWSHOT_METRICS_KEY>'")


async def get_task_service(
    uow: Annotated[UnitOfWork, Depends(get_uow)],
    engine: Annotated[AdaptationEngine, Depends(get_engine)],
    settings: Annotated[Settings, Depends(get_settings)],
) -> TaskService:
    return TaskService(uow, engine, settings)


async def get_tenant_service(request: Request, uow: Annotated[UnitOfWork, Depends(get_uow)]) -> TenantService:
    def forget_tasks(task_ids: list[str]) -> None:
        engine, deleted = request.app.state.engine, set(task_ids)
        if engine is not None and deleted:
            engine.cache.discard_where(lambda key: key[0] in deleted)

    return TenantService(uow, forget_tasks)


def current_tenant(
    request: Request, tenants: Annotated[TenantService, Depends(get_tenant_service)], authorization: AuthHeader = None
) -> str:
    """The authenticated tenant, if its request rate allows another request (429 otherwise)."""
    tenant_id = tenants.authenticate(bearer_token(authorization))
    limiter = request.app.state.rate_limiter
    if limiter is not None:
        wait = limiter.take(tenant_id)
        if wait is not None:
            raise RateLimited(f"more than {limiter.rate:g} requests per second (bursts of {limiter.burst}); "
                              "retry after Retry-After seconds", limiter.retry_after(wait))
    return tenant_id
