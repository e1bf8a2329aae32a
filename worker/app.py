"""The worker's Celery app: `celery -A worker.app worker|beat` (Flower: worker.flower).

One task per job kind, named `<kind>.run` and routed to the kind's queue, each running
the same claim/heartbeat/finish protocol around the kind's handler.
"""

from __future__ import annotations

import sys
import threading
from contextvars import Token
from typing import Any

from celery import Celery, Task
from celery.signals import (
    beat_init,
    task_postrun,
    task_prerun,
    worker_process_shutdown,
    worker_shutdown,
)

import worker.monitor  # noqa: F401 - registers the revoke that cancels the job
from core.jobs.celery_app import create_celery
from core.jobs.contracts import KINDS
from core.logs import bind, configure_logging, unbind
from core.settings import ConfigurationError, get_settings
from worker.maintenance.beat import maintain_forever
from worker.outcomes import JobFailed, JobRevoked, end_task
from worker.protocol import hand_off, run_job
from worker.registry import Handler, discover_handlers
from worker.requests import JobRequest
from worker.resources import close_runtime

configure_logging("worker")
try:
    settings = get_settings()
except ConfigurationError as exc:
    sys.exit(f"conveyor worker: {exc}")
app: Celery = create_celery(settings, "conveyor-worker")
# Task events go to the monitor in batches (`worker.task_events`).
app.conf.worker_consumer = "worker.task_events:BatchingConsumer"

# Soft limit first, so the handler can fail the job cleanly before the hard kill.
SOFT_LIMIT_MARGIN_SECONDS = 10


def _register(kind_name: str, handler: Handler) -> None:
    kind = KINDS[kind_name]

    def run(task: Task[Any, Any], job_id: str) -> dict[str, Any]:
        # The node name as the main process knows it (see `worker.requests`).
        ended = run_job(handler, job_id, node=task.request.hostname or "")
        hand_off(task.app, ended, kind.queue.value)
        # For Celery's own line about how the task ended (unbound at task_postrun).
        bind(tenant_id=ended.tenant_id, attempt=ended.attempt)
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
        # A failed or cancelled job is expected: logged in a line, with no stack trace.
        throws=(JobFailed, JobRevoked),
    )(run)


for _kind, _handler in discover_handlers().items():
    _register(_kind, _handler)


# Every line logged while a job's task runs carries the job (core.logs): bound before
# the task starts, unbound once Celery has logged how it ended. By thread too: the
# threads pool may run two deliveries of one job at once.
_bound: dict[tuple[str, int], Token[dict[str, Any]]] = {}


@task_prerun.connect
def _bind_job(task_id: str, task: Task[Any, Any], **_: Any) -> None:
    _bound[(task_id, threading.get_ident())] = bind(
        fresh=True,
        job_id=task_id,
        kind=task.name.removesuffix(".run"),
        request_id=getattr(task.request, "request_id", None),
    )


@task_postrun.connect
def _unbind_job(task_id: str, **_: Any) -> None:
    token = _bound.pop((task_id, threading.get_ident()), None)
    if token is not None:
        unbind(token)


@beat_init.connect
def _start_maintenance(**_: Any) -> None:
    threading.Thread(target=maintain_forever, args=(app,), name="maintenance", daemon=True).start()


# What a process's runtime holds is written when it stops: a prefork child's at
# worker_process_shutdown; the threads pool runs jobs in the worker's own process,
# which only worker_shutdown reaches.
@worker_process_shutdown.connect
@worker_shutdown.connect
def _close_runtime(**_: Any) -> None:
    close_runtime()
