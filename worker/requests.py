"""The worker's main process's side of each task: how it ends in Celery's events (what
Flower shows), and what happens when a pool process dies under a job.

A job's outcome is the task's state (`worker.outcomes`): a cancelled job ends REVOKED,
and a failed job or a retry shows the job's error without the stack trace Celery
would send along.

When a pool process dies, Celery tells the main process (`WorkerLostError`) and puts
the message back (with `task_reject_on_worker_lost`), but the redelivery would find
the job still leased to the dead process and be turned away until the lease ran out.
The main process knows which process died, so it takes the job back first, if that
process held it: requeued (reason `worker_lost`) for the redelivery to claim at once,
or failed with `worker_lost` when no attempts are left.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from billiard.einfo import ExceptionInfo
from billiard.exceptions import WorkerLostError
from celery.worker.request import Request

from core.db import limit_waits
from core.jobs import lifecycle, totals
from core.jobs.totals import Counted
from worker.main_process import MAIN_PROCESS_WAITS, database
from worker.outcomes import JobFailed, JobRevoked
from worker.protocol import lease_owner_prefix

log = logging.getLogger("conveyor.worker")


class JobRequest(Request):
    def on_failure(self, exc_info: ExceptionInfo, *args: Any, **kwargs: Any) -> None:
        # The pool hands it over wrapped, in billiard's ExceptionWithTraceback.
        exc = getattr(exc_info.exception, "exc", exc_info.exception)
        if isinstance(exc, JobRevoked):
            # Acknowledged, with a task-revoked event: REVOKED in Flower.
            self._announce_revoked("cancelled", False, None, False)  # type: ignore[attr-defined]
            return
        if isinstance(exc, JobFailed):
            # The job's error says what happened: no stack trace, and its message only
            # to Flower (Celery's own event and log line carry just its type).
            exc_info.traceback = ""
            self.send_event("task-failed", exception=exc.shown(), traceback="")
            kwargs["send_failed_event"] = False
        try:
            if isinstance(exc, WorkerLostError) and self.worker_pid is not None:
                prefix = lease_owner_prefix(self.hostname, int(self.worker_pid))
                _take_back(uuid.UUID(self.id), prefix)
        except Exception as error:  # the lease runs out by itself; never break the main process
            log.warning("job %s: not taken back (%s)", self.id, type(error).__name__)
        super().on_failure(exc_info, *args, **kwargs)

    def on_retry(self, exc_info: ExceptionInfo) -> None:
        exc_info.traceback = ""  # the attempt's error says what happened
        super().on_retry(exc_info)


def _take_back(job_id: uuid.UUID, held_by: str) -> None:
    with database().transaction() as session:
        limit_waits(session, **MAIN_PROCESS_WAITS)
        taken = lifecycle.take_back_from_dead(session, job_id, held_by)
        if taken:
            totals.count(session, Counted.LEASE_TAKEOVERS)
    if taken:
        log.warning("job %s: its pool process died; taken back", job_id)
