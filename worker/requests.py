"""The worker's main process, when a pool process dies under a job.

Celery tells the main process (`WorkerLostError`) and puts the message back (with
`task_reject_on_worker_lost`), but the redelivery would find the job still leased to the
dead process and be turned away until the lease ran out. The main process knows which
process died, so it requeues the job first, if that process held it (reason
`worker_lost`): the redelivery claims it at once.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from billiard.einfo import ExceptionInfo
from billiard.exceptions import WorkerLostError
from celery.worker.request import Request

from core.db import retrying
from core.jobs import lifecycle
from worker.protocol import lease_owner_prefix
from worker.resources import runtime

log = logging.getLogger("conveyor.worker")

# The main process also serves every other job of this worker: it waits this long at
# most for the database before leaving the job to its lease.
RELEASE_DEADLINE_SECONDS = 5.0


class JobRequest(Request):
    def on_failure(self, exc_info: ExceptionInfo, *args: Any, **kwargs: Any) -> None:
        exc = exc_info.exception
        # The pool hands it over wrapped, in billiard's ExceptionWithTraceback.
        exc = getattr(exc, "exc", exc)
        if isinstance(exc, WorkerLostError) and self.worker_pid is not None:
            _release(uuid.UUID(self.id), lease_owner_prefix(self.hostname, int(self.worker_pid)))
        super().on_failure(exc_info, *args, **kwargs)


def _release(job_id: uuid.UUID, owner_prefix: str) -> None:
    db = runtime().db

    def release() -> bool:
        with db.transaction() as session:
            return lifecycle.requeue(
                session, job_id, None, reason="worker_lost", held_by=owner_prefix
            )

    deadline = time.monotonic() + RELEASE_DEADLINE_SECONDS
    try:
        released = retrying(f"release of job {job_id}", release, deadline=deadline)
    except Exception as exc:  # the lease runs out by itself; never break the main process
        log.warning("job %s: lease not released (%s)", job_id, type(exc).__name__)
        return
    if released:
        log.warning("job %s: its pool process died; requeued", job_id)
