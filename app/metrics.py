"""Prometheus metrics at ``GET /metrics``: request latency by route, encoder batches,
adaptation time and adapter-cache state (prometheus-client's default registry).

Label values are bounded: the route is the route's template (``/v1/tasks/{task_id}``,
never an id; ``unmatched`` for unknown paths) and the method one of the standard ones
(``other`` for anything else a client makes up). The figures are per process: with
``fewshot serve --workers N`` each scrape reaches one worker."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import Depends, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUESTS = Histogram(
    "fewshot_request_seconds", "HTTP request latency", ["method", "route", "status"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
PREDICTED_TEXTS = Counter("fewshot_predicted_texts_total", "texts classified by predict")
BATCH_TEXTS = Histogram("fewshot_encoder_batch_texts", "texts per micro-batched encoder pass",
                        buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024))
ENCODER_SECONDS = Histogram("fewshot_encoder_pass_seconds", "wall time of one encoder pass (tokenisation included)",
                            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
ADAPT_SECONDS = Histogram("fewshot_adaptation_seconds", "inner-loop adaptation time (calibration included)",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
CACHE_BYTES = Gauge("fewshot_adapter_cache_bytes", "bytes of adapters held in memory")
CACHE_ENTRIES = Gauge("fewshot_adapter_cache_entries", "adapters held in memory")


class CacheCounters(Collector):
    """``fewshot_adapter_cache_hits_total`` / ``..._misses_total``: counters read from the
    serving app's adapter cache at scrape time (the cache counts; this only reports)."""

    def __init__(self) -> None:
        self.engine: Callable[[], Any] = lambda: None

    def collect(self) -> Iterator[CounterMetricFamily]:
        engine = self.engine()
        if engine is None:
            return
        yield CounterMetricFamily("fewshot_adapter_cache_hits", "adapter cache hits since start", value=engine.cache.hits)
        yield CounterMetricFamily("fewshot_adapter_cache_misses", "adapter cache misses since start",
                                  value=engine.cache.misses)


CACHE_COUNTERS = CacheCounters()
REGISTRY.register(CACHE_COUNTERS)


class RequestTimer:
    """Pure ASGI middleware (no per-request task or body copy) timing each request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            method = scope["method"] if scope["method"] in METHODS else "other"
            REQUESTS.labels(method, path, str(status)).observe(time.perf_counter() - started)


def install_metrics(app: FastAPI, guard: Callable[..., None] | None = None) -> None:
    """The request timer and ``GET /metrics``; ``guard`` is a dependency run before it
    (the optional metrics key)."""
    app.add_middleware(RequestTimer)
    CACHE_COUNTERS.engine = lambda: app.state.engine  # the latest app built in this process

    @app.get("/metrics", include_in_schema=False, dependencies=[Depends(guard)] if guard else [])
    def metrics(request: Request) -> Response:
        engine = request.app.state.engine
        if engine is not None:
            CACHE_BYTES.set(engine.cache.num_bytes)
            CACHE_ENTRIES.set(len(engine.cache))
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
