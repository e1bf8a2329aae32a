"""The Celery app as Flower loads it (`celery -A worker.flower flower`, which
`conveyor flower` runs): the worker's app; Flower's two pages that answer without
the login everything else needs (`/metrics`, `/healthcheck`) made to need it too; and
a page of Conveyor's own, `/waiting`: the jobs Flower cannot see, because they wait in
PostgreSQL unpublished, per tenant and queue and why they wait.

A module of its own so that only Flower's process imports Flower.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from functools import cache

import tornado.web
from flower.urls import handlers
from flower.views import BaseHandler
from flower.views.monitor import Healthcheck, Metrics
from tornado.ioloop import IOLoop
from tornado.template import Template

from core.db import Database
from core.jobs.backlog import LineState, read_lines
from core.jobs.states import WaitingReason
from worker.app import app, settings

for _page in (Metrics, Healthcheck):
    # Flower checks FLOWER_BASIC_AUTH in get_current_user; `authenticated` makes the
    # page ask for it, as Flower's own pages do.
    _page.get = tornado.web.authenticated(_page.get)

# The busiest lines shown; the metrics count every one.
SHOWN_LINES = 200

_PAGE = Template(
    """<!doctype html>
<html><head><meta charset="utf-8"><title>Waiting jobs · Flower</title>
<style>body{font-family:sans-serif;margin:2em}td,th{padding:.3em .8em;text-align:right}
td:first-child,th:first-child,td:nth-child(2),th:nth-child(2){text-align:left}</style>
</head><body>
<p><a href="{{ prefix }}/">Flower</a> · Waiting jobs</p>
<h1>Jobs waiting, per tenant and queue</h1>
<p>Each tenant runs at most {{ cap or "any number of" }} jobs at once per queue
(TENANT_CONCURRENCY, or the tenant's own cap); the rest wait in PostgreSQL.
<em>scheduled</em>: not due yet; <em>tenant_limit</em>: due, in the tenant's line;
<em>broker</em>: sent, waiting for a worker.</p>
<table><thead><tr><th>Tenant</th><th>Queue</th><th>Running</th>
{% for reason in reasons %}<th>{{ reason }}</th>{% end %}</tr></thead><tbody>
{% for line in lines %}<tr><td title="{{ line.tenant_id or '' }}">{{ line.tenant_name }}</td>
<td>{{ line.queue }}</td><td>{{ line.running }}</td>
{% for reason in reasons %}<td>{{ line.waiting[reason] }}</td>{% end %}</tr>
{% end %}{% if not lines %}<tr><td colspan="6">No jobs are queued or running.</td></tr>{% end %}
</tbody></table></body></html>"""
)


@cache
def _db() -> Database:
    return Database(settings, "flower")


def _lines() -> list[LineState]:
    with _db().transaction() as session:
        return read_lines(session, SHOWN_LINES)


class WaitingView(BaseHandler):  # type: ignore[misc]
    @tornado.web.authenticated
    async def get(self) -> None:
        lines = await IOLoop.current().run_in_executor(None, _lines)
        if self.get_argument("json", ""):
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps([asdict(line) for line in lines], default=str))
            return
        self.finish(
            _PAGE.generate(
                lines=lines,
                reasons=[r.value for r in WaitingReason],
                cap=settings.tenant_concurrency,
                prefix=self.application.options.url_prefix or "",
            )
        )


# Before Flower's catch-all 404 handler, at the end of the list.
handlers.insert(0, tornado.web.url(r"/waiting", WaitingView, name="waiting"))

__all__ = ["app"]
