"""``GET /healthz``: readiness, for load balancers and orchestrators."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.errors import DatabaseUnavailable
from app.schemas import HealthOut, error_responses

router = APIRouter(tags=["health"])
log = logging.getLogger("fewshot")


@router.get("/healthz", summary="200 when the encoder is loaded and the database answers, else 503",
            responses={200: {"model": HealthOut}, 503: {"model": HealthOut, "description": "starting, or the database "
                                                                        "does not answer (Retry-After)"},
                       **error_responses(400, 413)})
def healthz(request: Request) -> JSONResponse:
    """Readiness: ``{"status": "ok", ...}``; 503 with ``starting`` while the encoder loads,
    ``database_unavailable`` when the database does not answer ``SELECT 1``."""
    state = request.app.state
    if getattr(state, "engine", None) is None:
        return JSONResponse({"status": "starting"}, status_code=503)
    try:
        with state.session_factory() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        log.warning("health check: the database does not answer (%s)", type(error).__name__)
        return JSONResponse({"status": "database_unavailable"}, status_code=503, headers={"Retry-After": DatabaseUnavailable.retry_after})
    return JSONResponse({"status": "ok", "encoder": state.engine.fingerprint, "device": str(state.engine.encoder.device)})
