"""Unversioned root endpoints: identity, liveness, readiness."""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.problems import PROBLEM_JSON, problem_body
from api.readiness import run_checks
from api.state import AppState, app_state
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


def probe(state: AppState) -> dict[str, str]:
    def database() -> None:
        with state.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def broker() -> None:
        with state.celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=3)

    return run_checks(
        {
            "database": database,
            "broker": broker,
            "kv_store": state.kv.ping,
            "storage": state.storage.ping,
        }
    )


@router.get("/readyz", responses={503: {"content": {PROBLEM_JSON: {}}}})
def readyz(request: Request) -> JSONResponse:
    """Readiness: the database, the broker, the key-value store and storage answer.
    Checked at most once every two seconds per API process; `checked_at` says when."""
    readiness = app_state(request).readiness.get()
    checks = readiness.checks
    checked_at = readiness.checked_at.isoformat()
    if readiness.ready:
        return JSONResponse({"status": "ok", "checks": checks, "checked_at": checked_at})
    log.warning("not ready: %s", checks)
    body = problem_body(
        ErrorCode.SERVICE_UNAVAILABLE,
        request_id=getattr(request.state, "request_id", None),
        detail="A backing service is down",
        instance="/readyz",
        checks=checks,
        checked_at=checked_at,
    )
    return JSONResponse(body, status_code=503, media_type=PROBLEM_JSON)
