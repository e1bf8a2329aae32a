"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool

from api import access_log, openapi
from api.cors import Cors
from api.metrics import ApiMetrics, HttpMetricsMiddleware
from api.middleware import RequestContextMiddleware
from api.problems import install_problem_handlers
from api.readiness import ReadinessCache
from api.routers import (
    agents,
    api_keys,
    auth,
    health,
    invitations,
    jobs,
    metrics,
    tenants,
    uploads,
    users,
    webhooks,
)
from api.routers.health import probe
from api.routers.uploads import UPLOAD_BODY_PATHS
from api.state import AppState
from api.streams import StreamSlots
from core.db import Database
from core.jobs.celery_app import create_celery
from core.jobs.publishing import JobPublisher
from core.kv import open_kv_store
from core.logs import configure_logging
from core.settings import Settings, get_settings
from core.storage import open_storage


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging("api")
    access_log.install()
    db = Database(settings, "api")
    celery = create_celery(settings, "conveyor-api")
    state = AppState(
        settings=settings,
        db=db,
        celery=celery,
        publisher=JobPublisher(celery, db, settings),
        kv=open_kv_store(settings, db),
        storage=open_storage(settings),
        readiness=ReadinessCache(lambda: probe(state)),
        streams=StreamSlots(settings.event_streams_per_caller),
        metrics=ApiMetrics(db, settings.metrics_top_tenants),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if settings.is_dev:
            # Production buckets are made by their operators; dev makes its own.
            await run_in_threadpool(state.storage.ensure_bucket)
        yield
        await run_in_threadpool(state.publisher.close)
        state.kv.close()
        state.db.dispose()

    # /docs and /redoc load Swagger UI and ReDoc from the package's own copies, served
    # under /static-offline-docs: no CDN, so they work offline and behind strict egress.
    app = FastAPIOffline(
        title="Conveyor",
        summary="Submit jobs, follow them, get their results.",
        lifespan=lifespan,
    )
    app.state.conveyor = state
    install_problem_handlers(app)
    openapi.install(app)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_request_bytes,
        # The multipart envelope around the file is small; the file's own limit is
        # enforced exactly where it is streamed.
        upload_body_bytes=settings.max_upload_bytes + 1024 * 1024,
        upload_paths=UPLOAD_BODY_PATHS,
    )
    if settings.metrics_enabled:
        # Outside the request context, so the last-resort 500 is counted too.
        app.add_middleware(HttpMetricsMiddleware, metrics=state.metrics)
    if settings.cors_origins:
        # Outermost, so that every answer (the last-resort 500 included) carries it.
        app.add_middleware(Cors, origins=settings.cors_origins)

    # Each router included once, at the top: every level of nesting is matched again
    # on every request. The busiest (jobs) is tried first.
    for module in (jobs, uploads, auth, users, tenants, invitations, api_keys, agents, webhooks):
        app.include_router(module.router, prefix="/api/v1")
    app.include_router(health.router)
    app.include_router(metrics.router)
    log = logging.getLogger("conveyor.api")
    if not settings.is_dev and not settings.smtp_host:
        log.warning("SMTP_HOST is not set: password reset and invitation emails are not sent")
    log.info("api ready (environment=%s)", settings.environment)
    return app
