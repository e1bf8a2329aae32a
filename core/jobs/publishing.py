"""Publishing jobs whose rows are committed, with one failure policy for every caller.

A job is published only after its `queued` row is committed, then `enqueued_at` is
recorded. Nothing here raises: a job whose publish or record fails stays queued, and the
reconciler sends it again. A dead broker stops the batch at once instead of making every
remaining job wait out its own connection timeout.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from celery import Celery
from kombu.exceptions import OperationalError as BrokerUnavailable

from core.db import Database
from core.jobs.contracts import JobKind
from core.jobs.lifecycle import mark_enqueued
from core.queue import publish_job

log = logging.getLogger("conveyor.publish")


def publish_committed(
    celery: Celery,
    db: Database,
    jobs: Sequence[tuple[uuid.UUID, JobKind]],
    countdown: float | None = None,
) -> list[uuid.UUID]:
    """Publish each job, record the ones sent, and return their ids."""
    sent: list[uuid.UUID] = []
    for job_id, kind in jobs:
        try:
            publish_job(celery, job_id, kind, countdown)
        except (BrokerUnavailable, OSError) as exc:
            log.warning(
                "broker unavailable (%s); %d job(s) left for the reconciler",
                type(exc).__name__,
                len(jobs) - len(sent),
            )
            break
        except Exception as exc:
            log.warning(
                "publish of job %s failed (%s); the reconciler will send it",
                job_id,
                type(exc).__name__,
            )
            continue
        sent.append(job_id)
    if sent:
        try:
            with db.transaction() as session:
                mark_enqueued(session, sent)
        except Exception as exc:
            log.warning(
                "could not record the publish of %d job(s) (%s)", len(sent), type(exc).__name__
            )
    return sent
