"""Every error leaves the API as `application/problem+json` (RFC 9457) with a stable
`code`; this module renders them and maps framework errors onto the same shape."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import ConveyorError, ErrorCode

log = logging.getLogger("conveyor.api")

PROBLEM_JSON = "application/problem+json"

_BY_STATUS = {
    400: ErrorCode.BAD_REQUEST,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
}


def problem_body(
    error: ErrorCode,
    *,
    detail: str | None = None,
    instance: str | None = None,
    request_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"urn:conveyor:problem:{error.code}",
        "title": error.title,
        "status": error.http_status,
        "code": error.code,
        "detail": detail or error.title,
    }
    if instance is not None:
        body["instance"] = instance
    if request_id is not None:
        body["request_id"] = request_id
    # Extra members never replace the standard ones.
    body.update({key: value for key, value in extra.items() if key not in body})
    return body


def problem_response(
    request: Request,
    error: ErrorCode,
    *,
    detail: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    headers = dict(headers or {})
    if error.http_status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse(
        problem_body(
            error,
            detail=detail,
            instance=request.url.path,
            request_id=getattr(request.state, "request_id", None),
            **extra,
        ),
        status_code=error.http_status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    errors = []
    for err in exc.errors():
        location, *path = [str(part) for part in err.get("loc", ())] or ["body"]
        errors.append({"in": location, "field": ".".join(path), "message": str(err["msg"])})
    return errors


async def _conveyor_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ConveyorError)
    headers = {}
    extra = dict(exc.extra)
    if exc.retry_after is not None:
        seconds = max(1, math.ceil(exc.retry_after))
        headers["Retry-After"] = str(seconds)
        extra["retry_after"] = seconds
    return problem_response(request, exc.error, detail=exc.detail, headers=headers, **extra)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _field_errors(exc)
    fields = ", ".join(e["field"] or e["in"] for e in errors)
    return problem_response(
        request, ErrorCode.VALIDATION_FAILED, detail=f"Invalid request: {fields}", errors=errors
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    error = _BY_STATUS.get(exc.status_code)
    if error is None:
        error = ErrorCode.INTERNAL if exc.status_code >= 500 else ErrorCode.BAD_REQUEST
    detail = exc.detail if isinstance(exc.detail, str) else None
    return problem_response(request, error, detail=detail, headers=exc.headers)


def _unavailable(service: str) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    # A connection-level failure (server restarting, failover, a dropped connection):
    # the client may simply try again; nothing of the request was kept.
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        log.warning("%s unavailable: %s", service, type(exc).__name__)
        return problem_response(
            request,
            ErrorCode.SERVICE_UNAVAILABLE,
            detail=f"The {service} is unavailable; try again shortly",
            headers={"Retry-After": "1"},
        )

    return handle


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(OperationalError, _unavailable("database"))
    app.add_exception_handler(RedisConnectionError, _unavailable("key-value store"))
    app.add_exception_handler(RedisTimeoutError, _unavailable("key-value store"))
    app.add_exception_handler(ConveyorError, _conveyor_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
