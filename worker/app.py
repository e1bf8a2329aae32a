"""The worker's Celery app: `celery -A worker.app worker|beat` (Flower: worker.flower).

One task per job kind, named `<kind>.run` and routed to the kind's queue, each running
the same claim/heartbeat/finish protocol around the kind's handler.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

from celery import Celery, Task
from celery.signals import beat_init, worker_process_shutdown

import worker.monitor  # noqa: F401 - registers the revoke that cancels the job
from core.jobs.celery_app import create_celery
from core.jobs.contracts import KINDS
from core.kv import open_kv_store
from core.logs import configure_logging
from core.settings import ConfigurationError, get_settings
from worker.maintenance.housekeeping import INTERVAL_SECONDS as HOUSEKEEPING_INTERVAL
from worker.maintenance.housekeeping import housekeep
from worker.maintenance.reconciler import reconcile
from worker.outcomes import JobFailed, end_task
from worker.protocol import run_job
from worker.registry import Handler, discover_handlers
from worker.requests import JobRequest
from worker.resources import runtime

log = logging.getLogger("conveyor.worker")
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

    def run(task: Task[Any, Any], job_id: str) -> dict[str, Any]:
        # The node name as the main process knows it (see `worker.requests`).
        ended = run_job(handler, job_id, node=task.request.hostname or "")
        return end_task(ended)  # the task's state in Flower is the job's

    run.__name__ = kind_name.replace(".", "_")
    app.task(
        name=kind.task_name,
        bind=True,
        queue=kind.queue.value,
        time_limit=kind.time_limit_seconds,
        soft_time_limit=kind.time_limit_seconds - SOFT_LIMIT_MARGIN_SECONDS,
        # A pool process that dies under a job gives its lease back at once.
        Request=JobRequest,
        # A failed job is expected: logged in a line, with no stack trace.
        throws=(JobFailed,),
    )(run)


for _kind, _handler in discover_handlers().items():
    _register(_kind, _handler)


def _reconcile_forever() -> None:
    kv = open_kv_store(settings, runtime().db)
    next_housekeeping = time.monotonic()
    while True:
        try:
            reconcile(app)
        except Exception:  # the next round may work; the loop must not die
            log.exception("reconcile round failed")
        if time.monotonic() >= next_housekeeping:
            next_housekeeping = time.monotonic() + HOUSEKEEPING_INTERVAL
            try:
                housekeep(kv)
            except Exception:
                log.exception("housekeeping failed")
        time.sleep(settings.reconcile_interval_seconds)


@beat_init.connect
def _start_reconciler(**_: Any) -> None:
    """The reconciler runs in beat's process, on a thread of its own: as a queued task
    it would wait behind the very jobs it exists to rescue when every slot is busy."""
    threading.Thread(target=_reconcile_forever, name="reconciler", daemon=True).start()


@worker_process_shutdown.connect
def _dispose_pool(**_: Any) -> None:
    runtime().db.dispose()
