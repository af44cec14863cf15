from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="200 when the encoder is loaded and the database answers")
def healthz(request: Request) -> JSONResponse:
    state = request.app.state
    ready = getattr(state, "engine", None) is not None
    body = {"status": "ok" if ready else "starting"}
    if ready:
        body.update(encoder=state.engine.fingerprint, device=str(state.engine.encoder.device))
    return JSONResponse(body, status_code=200 if ready else 503)
