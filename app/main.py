"""ASGI entry point: ``app.main:app`` and the factory ``app.main:create_app``.

Building the app is cheap; the lifespan owns the heavy objects (database engine,
encoder, adaptation engine) and creates them at start-up, not at import."""

from __future__ import annotations

import logging
import math
import secrets
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
import torch
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.db.migrate import upgrade_head
from app.db.session import make_engine, make_session_factory
from app.deps import require_metrics_key
from app.errors import error_body, install_error_handlers
from app.metrics import install_metrics
from app.ratelimit import TokenBuckets
from app.routers import health, tasks, tenants
from app.services.engine import AdaptationEngine, set_thread_count
from app.settings import Settings
from models.checkpoint import build_encoder, checkpoint_for_encoder, resolve_checkpoint
from models.encoder import TextEncoder
from models.encoder_registry import resolve_encoder
from models.inner_loop import InnerLoopConfig

log = logging.getLogger("fewshot")


class BodySizeLimit:
    """Refuses request bodies over ``max_bytes`` with 413: at once when Content-Length
    says so, else (chunked bodies) as soon as the bytes received pass the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            length = dict(scope.get("headers", [])).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_bytes:
                detail = f"request body of {int(length)} bytes; the limit is {self.max_bytes}"
                await JSONResponse(error_body("limit_exceeded", detail), status_code=413)(scope, receive, send)
                return
            receive = self._counting(receive)
        await self.app(scope, receive, send)

    def _counting(self, receive: Receive) -> Receive:
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise StarletteHTTPException(413, f"request body over the limit of {self.max_bytes} bytes")
            return message

        return counted


def _load_engine(settings: Settings, encoder: TextEncoder | None) -> AdaptationEngine:
    threads = None
    if encoder is None:
        # The encoder's thread gets every torch thread; this thread (and every thread started
        # after it: request threads, workers) gets one, so that no other thread of the server
        # forms an OpenMP team of its own (see AdaptationEngine). Loading runs single-threaded.
        threads = settings.torch_threads or torch.get_num_threads()
        set_thread_count(1)
        model_dir = resolve_encoder(settings.encoder, settings.encoder_cache)
        checkpoint = checkpoint_for_encoder(settings.checkpoint, model_dir)
        if checkpoint is None and settings.checkpoint.lower() == "default":
            log.info("FEWSHOT_CHECKPOINT=default: no checkpoint is shipped for encoder %s; serving it bare",
                     settings.encoder or "all-MiniLM-L6-v2")
        encoder = build_encoder(str(model_dir), checkpoint, settings.device, settings.encoder_batch_size,
                                settings.encoder_quantize)
    else:
        checkpoint = resolve_checkpoint(settings.checkpoint)
    learned = checkpoint.inner_loop if checkpoint else InnerLoopConfig()
    return AdaptationEngine(
        encoder,
        settings.inner_loop(learned),
        settings.adapter_cache_bytes,
        batch_wait_ms=settings.batch_wait_ms,
        batch_max_texts=settings.batch_max_texts,
        queue_max_texts=settings.queue_max_texts,
        queue_max_texts_per_tenant=settings.queue_max_texts_per_tenant,
        encoder_threads=threads,
        reject_quantile=settings.oos_reject_quantile,
        ambiguity_margin=settings.ambiguity_margin,
    )


def _api_docs(settings: Settings) -> bool:
    """The interactive API documentation: on, except in production unless asked for."""
    return settings.api_docs if settings.api_docs is not None else settings.environment != "production"


def create_app(settings: Settings | None = None, encoder: TextEncoder | None = None) -> FastAPI:
    """Build the app. ``encoder`` replaces the configured one (tests pass a fake)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.auto_migrate:
            upgrade_head(settings.database_url)
        db_engine = make_engine(settings.database_url, pool_size=settings.max_concurrent_requests)
        app.state.session_factory = make_session_factory(db_engine)
        if settings.admin_key is not None:
            app.state.admin_key = settings.admin_key.get_secret_value()
        else:
            app.state.admin_key = secrets.token_urlsafe(32)
            print(f"FEWSHOT_ADMIN_KEY is not set; this run's admin key: {app.state.admin_key}", file=sys.stderr, flush=True)
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.max_concurrent_requests
        app.state.engine = _load_engine(settings, encoder)
        log.info("ready: encoder %s on %s", app.state.engine.fingerprint, app.state.engine.encoder.device)
        try:
            yield
        finally:
            app.state.engine.close()
            app.state.engine = None
            db_engine.dispose()

    app = FastAPI(
        title="Few-shot intent classification",
        version="0.1.0",
        description="Create a classifier for your own labels from a few examples per label; "
        "it adapts in milliseconds and serves predictions over HTTP.",
        lifespan=lifespan,
        **({} if _api_docs(settings) else {"docs_url": None, "redoc_url": None, "openapi_url": None}),
    )
    app.state.settings = settings
    app.state.engine = None
    rate = settings.rate_limit_per_tenant
    app.state.rate_limiter = TokenBuckets(rate, settings.rate_limit_burst or max(1, math.ceil(2 * rate))) if rate else None
    install_error_handlers(app)
    install_metrics(app, guard=require_metrics_key)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.include_router(health.router)
    app.include_router(tenants.router)
    app.include_router(tasks.router)
    return app


def __getattr__(name: str) -> FastAPI:
    """``app.main:app`` is built on first access, so importing this module stays cheap."""
    if name == "app":
        built = create_app()
        globals()["app"] = built
        return built
    raise AttributeError(name)
