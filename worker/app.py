"""The worker's Celery app: `celery -A worker.app worker|beat|flower`.

One task per job kind, named `<kind>.run` and routed to the kind's queue, each running
the same claim/heartbeat/finish protocol around the kind's handler.
"""

from __future__ import annotations

import sys
from typing import Any

from celery import Celery
from celery.signals import worker_process_shutdown

from core.jobs.contracts import KINDS
from core.logs import configure_logging
from core.queue import RECONCILE_TASK, create_celery
from core.settings import ConfigurationError, get_settings
from worker.maintenance.reconciler import reconcile
from worker.registry import Handler, discover_handlers
from worker.runner import run_job
from worker.runtime import runtime

configure_logging("worker")
try:
    settings = get_settings()
except ConfigurationError as exc:
    sys.exit(f"conveyor worker: {exc}")
app: Celery = create_celery(settings, "conveyor-worker")

# Soft limit first, so the handler can fail the job cleanly before the hard kill.
SOFT_LIMIT_MARGIN_SECONDS = 10


def _register(kind_name: str, handler: Handler) -> None:
    kind = KINDS[kind_name]

    def run(job_id: str) -> None:
        run_job(app, handler, job_id)

    run.__name__ = kind_name.replace(".", "_")
    app.task(
        name=kind.task_name,
        queue=kind.queue.value,
        time_limit=kind.time_limit_seconds,
        soft_time_limit=kind.time_limit_seconds - SOFT_LIMIT_MARGIN_SECONDS,
    )(run)


for _kind, _handler in discover_handlers().items():
    _register(_kind, _handler)


@app.task(name=RECONCILE_TASK, ignore_result=True)
def reconcile_task() -> None:
    reconcile(app)


app.conf.beat_schedule = {
    "reconcile": {
        "task": RECONCILE_TASK,
        "schedule": settings.reconcile_interval_seconds,
        # A backlog of reconcile messages is useless: only the latest matters.
        "options": {"expires": settings.reconcile_interval_seconds},
    },
}


@worker_process_shutdown.connect
def _dispose_pool(**_: Any) -> None:
    runtime().db.dispose()
