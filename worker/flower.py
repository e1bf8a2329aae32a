"""The Celery app as Flower loads it (`celery -A worker.flower flower`, which
`conveyor flower` runs): the worker's app, and Flower's two pages that answer without
the login everything else needs (`/metrics`, `/healthcheck`) made to need it too.

A module of its own so that only Flower's process imports Flower.
"""

from __future__ import annotations

import tornado.web
from flower.views.monitor import Healthcheck, Metrics

from worker.app import app

for _page in (Metrics, Healthcheck):
    # Flower checks FLOWER_BASIC_AUTH in get_current_user; `authenticated` makes the
    # page ask for it, as Flower's own pages do.
    _page.get = tornado.web.authenticated(_page.get)

__all__ = ["app"]
