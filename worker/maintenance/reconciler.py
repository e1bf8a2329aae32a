"""The reconciler: nothing submitted is ever lost.

Run by beat; a transaction-scoped advisory lock makes it a singleton even if two beats
run. It re-sends jobs whose publish failed or whose message vanished, and takes back
jobs whose worker died (lease expired): requeued, or failed once out of attempts.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from celery import Celery
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from core.jobs import lifecycle
from core.jobs.contracts import KINDS
from core.jobs.lifecycle import JobError
from core.jobs.states import JobStatus
from core.models import Job
from core.queue import publish_job
from core.settings import Settings
from worker.runtime import runtime

log = logging.getLogger("conveyor.reconciler")

LOCK_KEY = 0x636F6E76  # "conv"
BATCH = 500

DEAD_LETTER = JobError(
    "worker_lost",
    "The worker running this job stopped responding and no attempts are left",
    retryable=False,
)


@dataclass(frozen=True)
class ReconcileReport:
    resent: int
    requeued: int
    dead_lettered: int


def _take_back_expired(session: Session) -> tuple[list[tuple[uuid.UUID, str]], int]:
    rows = session.execute(
        select(Job.id, Job.kind, Job.attempts, Job.max_attempts)
        .where(Job.status == JobStatus.RUNNING, Job.lease_until < func.now())
        .limit(BATCH)
        .with_for_update(skip_locked=True)
    ).all()
    requeued: list[tuple[uuid.UUID, str]] = []
    dead = 0
    for row in rows:
        if row.attempts >= row.max_attempts:
            dead += lifecycle.fail(session, row.id, None, DEAD_LETTER)
        elif lifecycle.requeue(session, row.id, None, reason="lease_expired"):
            requeued.append((row.id, row.kind))
    return requeued, dead


def _stale_queued(session: Session, settings: Settings) -> list[tuple[uuid.UUID, str]]:
    now = func.now()
    rows = session.execute(
        select(Job.id, Job.kind)
        .where(
            Job.status == JobStatus.QUEUED,
            or_(
                and_(
                    Job.enqueued_at.is_(None),
                    Job.updated_at < now - timedelta(seconds=settings.unpublished_grace_seconds),
                ),
                Job.enqueued_at < now - timedelta(seconds=settings.queued_stale_seconds),
            ),
        )
        .order_by(Job.created_at)
        .limit(BATCH)
        .with_for_update(skip_locked=True)
    ).all()
    return [(row.id, row.kind) for row in rows]


def reconcile(celery: Celery) -> ReconcileReport | None:
    rt = runtime()
    with rt.db.transaction() as session:
        if not session.scalar(select(func.pg_try_advisory_xact_lock(LOCK_KEY))):
            log.info("another reconciler is running; skipping")
            return None
        requeued, dead = _take_back_expired(session)
        to_send = requeued + _stale_queued(session, rt.settings)
    # Publish after the commit: a worker must find the job queued when the message lands.
    sent: list[uuid.UUID] = []
    for job_id, kind in to_send:
        try:
            publish_job(celery, job_id, KINDS[kind])
            sent.append(job_id)
        except Exception as exc:
            log.warning("re-send of job %s failed (%s); next round", job_id, type(exc).__name__)
            break
    with rt.db.transaction() as session:
        lifecycle.mark_enqueued(session, sent)
    report = ReconcileReport(resent=len(sent), requeued=len(requeued), dead_lettered=dead)
    if to_send or dead:
        log.info("reconciled: %s", report)
    return report
