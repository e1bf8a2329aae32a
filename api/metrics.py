"""Prometheus metrics of the API process: its requests, and the jobs' backlog read
from PostgreSQL at scrape time (`core.jobs.backlog`). Served at GET /metrics
(`api.routers.metrics`); docs/monitoring.md lists every metric.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from fastapi.routing import iter_route_contexts
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.db import Database
from core.jobs.backlog import ACTIVE, read_backlog
from core.jobs.contracts import KINDS, Queue

log = logging.getLogger("conveyor.api")

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
        self.registry.register(BacklogCollector(db, top_tenants))

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


class BacklogCollector(Collector):
    """Queued and running jobs per kind, the oldest waiting job per queue, and the
    busiest tenants, read from PostgreSQL at each scrape."""

    def __init__(self, db: Database, top_tenants: int) -> None:
        self._db = db
        self._top_tenants = top_tenants

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "conveyor_metrics_database_up",
            "1 if this scrape could read the jobs from PostgreSQL; the job metrics are "
            "missing from a scrape that could not.",
        )
        try:
            with self._db.transaction() as session:
                backlog = read_backlog(session, self._top_tenants)
        except Exception as exc:
            log.warning("metrics: jobs not read (%s)", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up

        jobs = GaugeMetricFamily(
            "conveyor_jobs",
            "Jobs queued or running, by kind, queue and status.",
            labels=["kind", "queue", "status"],
        )
        counts = backlog.jobs.copy()
        for kind in KINDS.values():  # every series present, zeros included
            for status in ACTIVE:
                counts.setdefault((kind.name, kind.queue.value, status.value), 0)
        for (kind_name, queue, state), count in sorted(counts.items()):
            jobs.add_metric([kind_name, queue, state], count)
        yield jobs

        oldest = GaugeMetricFamily(
            "conveyor_queue_oldest_age_seconds",
            "How long the oldest job that is due has waited in each queue (0 if none).",
            labels=["queue"],
        )
        for queue in sorted({q.value for q in Queue} | set(backlog.oldest_age)):
            oldest.add_metric([queue], backlog.oldest_age.get(queue, 0.0))
        yield oldest

        tenants = GaugeMetricFamily(
            "conveyor_tenant_jobs",
            "Jobs queued or running per tenant: the busiest by id, the rest as `other`, "
            "jobs of no tenant (account email) as `system`.",
            labels=["tenant", "status"],
        )
        for (tenant, state), count in sorted(backlog.tenants.items()):
            tenants.add_metric([tenant, state], count)
        yield tenants
