"""The worker's main process, when a pool process dies under a job.

Celery tells the main process (`WorkerLostError`) and puts the message back (with
`task_reject_on_worker_lost`), but the redelivery would find the job still leased to the
dead process and be turned away until the lease ran out. The main process knows which
process died, so it takes the job back first, if that process held it: requeued
(reason `worker_lost`) for the redelivery to claim at once, or failed with
`worker_lost` when no attempts are left.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from billiard.einfo import ExceptionInfo
from billiard.exceptions import WorkerLostError
from celery.worker.request import Request

from core.db import Database
from core.jobs import lifecycle
from core.settings import get_settings
from worker.protocol import lease_owner_prefix

log = logging.getLogger("conveyor.worker")

_db: Database | None = None


def _database() -> Database:
    """Connections opened when needed and closed after use: the main process forks new
    pool processes, which must not inherit (and, closing them, end) its connections."""
    global _db
    if _db is None:
        _db = Database(get_settings(), "worker-main", pooled=False)
    return _db


class JobRequest(Request):
    def on_failure(self, exc_info: ExceptionInfo, *args: Any, **kwargs: Any) -> None:
        try:
            # The pool hands it over wrapped, in billiard's ExceptionWithTraceback.
            exc = getattr(exc_info.exception, "exc", exc_info.exception)
            if isinstance(exc, WorkerLostError) and self.worker_pid is not None:
                prefix = lease_owner_prefix(self.hostname, int(self.worker_pid))
                _take_back(uuid.UUID(self.id), prefix)
        except Exception as error:  # the lease runs out by itself; never break the main process
            log.warning("job %s: not taken back (%s)", self.id, type(error).__name__)
        super().on_failure(exc_info, *args, **kwargs)


def _take_back(job_id: uuid.UUID, held_by: str) -> None:
    # One try, no retries: this process also serves every other job of the worker.
    with _database().transaction() as session:
        taken = lifecycle.take_back_from_dead(session, job_id, held_by)
    if taken:
        log.warning("job %s: its pool process died; taken back", job_id)
