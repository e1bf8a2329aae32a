"""The monitor's revoke is a cancel.

Flower revokes a task with Celery's `revoke` control command, which every worker
receives. Celery alone would discard the task's message when it met it, or kill the
process running it (`terminate`), and leave the job queued or running in PostgreSQL,
where the reconciler would send it again to a worker that discards it again: a job
stranded behind its revoked task id (the task id is the job id).

So each worker also cancels the job (`lifecycle.revoke`, with an event saying it was
revoked from the monitor): a queued job at once; a running one at its handler's next
checkpoint, or outright when Celery killed its process or met its message (the
`task_revoked` signal). Every step is a compare-and-set, so the same revoke reaching
many workers cancels the job once.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from celery.signals import task_revoked
from celery.worker import control
from celery.worker import state as worker_state

from core.db import limit_waits
from core.jobs import lifecycle
from worker.main_process import MAIN_PROCESS_WAITS, database

log = logging.getLogger("conveyor.worker")

_celery_revoke = control.Panel.data["revoke"]


@control.control_command(variadic="task_id", signature="[id1 [id2 [... [idN]]]]")
def revoke(
    state: Any, task_id: str | list[str], terminate: bool = False, signal: Any = None, **kw: Any
) -> Any:
    """Celery's `revoke`, after asking each job to stop."""
    for each in [task_id] if isinstance(task_id, str) else task_id or []:
        _cancel(each, stopped=False)
    return _celery_revoke(state, task_id, terminate=terminate, signal=signal, **kw)


@task_revoked.connect
def _revoked(request: Any, terminated: bool = False, **_: Any) -> None:
    """Celery killed the job's process, or discarded its message as revoked."""
    if request.id in worker_state.revoked:  # not a job that ended cancelled by itself
        _cancel(request.id, stopped=bool(terminated))


def _cancel(task_id: str, *, stopped: bool) -> None:
    try:
        job_id = uuid.UUID(task_id)
    except ValueError:
        return  # not a job's task
    try:
        with database().transaction() as session:
            limit_waits(session, **MAIN_PROCESS_WAITS)
            status = lifecycle.revoke(session, job_id, stopped=stopped)
    except Exception as exc:  # one try: this process serves every job of the worker
        log.warning("job %s revoked; cancel not written (%s)", job_id, type(exc).__name__)
        return
    if status is not None:
        log.info("job %s revoked from the monitor; now %s", job_id, status)
