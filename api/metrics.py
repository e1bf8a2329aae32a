"""Prometheus metrics of the API process: its requests, and the jobs' metrics read
from PostgreSQL at scrape time (`api.job_metrics`). Served at GET /metrics
(`api.routers.metrics`); docs/monitoring.md lists every metric.
"""

from __future__ import annotations

import time

from fastapi.routing import iter_route_contexts
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.job_metrics import JobsCollector
from core.db import Database

# A client may send any method; only these get a series of their own.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The route of a request that matched none: one series, whatever the path.
UNMATCHED = "unmatched"


class ApiMetrics:
    def __init__(self, db: Database, top_tenants: int) -> None:
        # A registry per app, not the process-wide default: each app (tests make many)
        # reports its own requests.
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "conveyor_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "conveyor_http_request_duration_seconds",
            "Time to answer an HTTP request (to the start of the response body for streams).",
            ["method", "route"],
            registry=self.registry,
        )
        self.registry.register(JobsCollector(db, top_tenants))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in _METHODS else "other"
        self.requests.labels(method, route, str(status)).inc()
        self.duration.labels(method, route).observe(seconds)


class HttpMetricsMiddleware:
    """Counts every answer, the last-resort 500 included (so it sits outside
    `api.middleware`), by the route's template: `/api/v1/jobs/{job_id}`, never the id."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics
        # A route's full template by the route: a route in an included router knows only
        # its own part of the path (`/jobs/{job_id}`, not `/api/v1/jobs/{job_id}`).
        self._templates: dict[int, str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app raises before answering, the server answers 500

        async def send_counting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                self._observe(scope, status, started)
            await send(message)

        try:
            await self.app(scope, receive, send_counting)
        except BaseException:
            self._observe(scope, status, started)
            raise

    def _observe(self, scope: Scope, status: int, started: float) -> None:
        if scope.get("_conveyor_counted"):
            return
        scope["_conveyor_counted"] = True
        self.metrics.observe(
            scope["method"], self._template(scope), status, time.perf_counter() - started
        )

    def _template(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is None:
            return UNMATCHED
        if self._templates is None:  # the routes are all in place by the first request
            self._templates = {
                id(context.original_route): context.path
                for context in iter_route_contexts(scope["app"].routes)
                if context.path is not None
            }
        return self._templates.get(id(route)) or getattr(route, "path", None) or UNMATCHED
