"""Unversioned root endpoints: identity, liveness, readiness."""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.problems import PROBLEM_JSON, problem_body
from api.state import app_state
from core.errors import ErrorCode

log = logging.getLogger("conveyor.api")
router = APIRouter(tags=["health"])


def _version() -> str:
    try:
        return version("conveyor")
    except PackageNotFoundError:
        return "0+unknown"


@router.get("/")
async def root() -> dict[str, str]:
    return {"name": "conveyor", "version": _version(), "docs": "/docs"}


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers. Checks nothing else on purpose."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"content": {PROBLEM_JSON: {}}}})
def readyz(request: Request) -> JSONResponse:
    """Readiness: the database, the broker, the key-value store and storage answer."""
    state = app_state(request)
    checks: dict[str, Any] = {}
    try:
        with state.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unavailable ({type(exc).__name__})"
    try:
        with state.celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"unavailable ({type(exc).__name__})"
    for name, ping in (("kv_store", state.kv.ping), ("storage", state.storage.ping)):
        try:
            ping()
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"unavailable ({type(exc).__name__})"
    if all(value == "ok" for value in checks.values()):
        return JSONResponse({"status": "ok", "checks": checks})
    log.warning("not ready: %s", checks)
    body = problem_body(
        ErrorCode.SERVICE_UNAVAILABLE,
        request_id=getattr(request.state, "request_id", None),
        detail="A backing service is down",
        instance="/readyz",
        checks=checks,
    )
    return JSONResponse(body, status_code=503, media_type=PROBLEM_JSON)
