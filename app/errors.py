"""Domain errors raised by services, and the one place that maps them to HTTP.

Every error response has the body ``{"error": <code>, "detail": <message>}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("fewshot")


class DomainError(Exception):
    status_code = 400
    code = "bad_request"
    retry_after: str | None = None  # seconds, sent as Retry-After: when to try again

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def headers(self) -> dict[str, str] | None:
        if self.status_code == 401:
            return {"WWW-Authenticate": "Bearer"}
        return {"Retry-After": self.retry_after} if self.retry_after else None


class Unauthorized(DomainError):
    status_code, code = 401, "unauthorized"


class Forbidden(DomainError):
    status_code, code = 403, "forbidden"


class NotFound(DomainError):
    status_code, code = 404, "not_found"


class LimitExceeded(DomainError):
    status_code, code = 413, "limit_exceeded"


class InvalidInput(DomainError):
    status_code, code = 422, "validation_error"


class Conflict(DomainError):
    status_code, code = 409, "conflict"


class PreconditionFailed(DomainError):
    """``If-Match`` named a version of the task other than its current one."""

    status_code, code = 412, "precondition_failed"


class Overloaded(DomainError):
    status_code, code, retry_after = 503, "overloaded", "1"


class DatabaseUnavailable(DomainError):
    status_code, code, retry_after = 503, "database_unavailable", "5"


class RateLimited(DomainError):
    status_code, code = 429, "rate_limited"

    def __init__(self, detail: str, retry_after: str) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


def error_body(code: str, detail: object) -> dict[str, object]:
    return {"error": code, "detail": detail}


def error_response(error: DomainError) -> JSONResponse:
    return JSONResponse(error_body(error.code, error.detail), status_code=error.status_code, headers=error.headers())


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, error: DomainError) -> JSONResponse:
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, error: RequestValidationError) -> JSONResponse:
        # Where and why, not the input itself: echoing it back could be megabytes (a whole
        # import document) or not encodable at all (a lone surrogate would fail as a 500).
        problems = [{"type": e["type"], "loc": list(e["loc"]), "msg": e["msg"]} for e in error.errors()]
        return JSONResponse(error_body("validation_error", jsonable_encoder(problems)), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "limit_exceeded"}.get(error.status_code, "http_error")
        detail = error.detail
        if error.status_code == 400:  # FastAPI's answer to a body it cannot even decode (JSON that is not UTF-8)
            code, detail = "invalid_body", "the body could not be read: send JSON encoded as UTF-8"
        return JSONResponse(error_body(code, detail), status_code=error.status_code, headers=error.headers)

    @app.exception_handler(DBAPIError)
    async def _database(_: Request, error: DBAPIError) -> JSONResponse:
        if not error.connection_invalidated and not _is_unavailable(error):
            raise error  # a real bug: the catch-all below answers it (and it is logged)
        log.warning("the database does not answer: %s", type(error.orig).__name__)
        return error_response(DatabaseUnavailable("the database does not answer; try again shortly"))

    @app.exception_handler(PoolTimeout)
    async def _pool(_: Request, error: PoolTimeout) -> JSONResponse:
        log.warning("no database connection free within the pool timeout")
        return error_response(DatabaseUnavailable("no database connection is free; try again shortly"))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
        return JSONResponse(error_body("internal_error", "internal server error"), status_code=500)


def _is_unavailable(error: DBAPIError) -> bool:
    """Connection-level failures (server down, refused, dropped; SQLite still locked by
    another writer after its busy timeout), not SQL errors."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    if isinstance(error, InterfaceError):
        return True
    if not isinstance(error, OperationalError):
        return False
    message = str(error.orig).lower()
    return any(sign in message for sign in ("connect", "connection", "server closed", "terminat", "unable to open",
                                            "timeout", "timed out", "no route", "refused",
                                            "database is locked", "database is busy"))  # SQLite past its busy timeout
