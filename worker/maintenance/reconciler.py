"""The reconciler: nothing submitted is ever lost.

It runs inside the beat process (see `worker.app`), not as a queued task, so it keeps
working when every worker slot is busy. A transaction-scoped advisory lock makes it a
singleton even if two beats run. It re-sends jobs whose publish failed or whose message
vanished, and takes back jobs whose worker died (lease expired): requeued, or failed
once out of attempts.
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
from core.jobs.contracts import KINDS, JobKind
from core.jobs.lifecycle import JobError
from core.jobs.publishing import publish_committed
from core.jobs.states import JobStatus
from core.models import Job
from core.settings import Settings
from worker.resources import runtime

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


def _take_back_expired(session: Session) -> tuple[list[tuple[uuid.UUID, JobKind]], int]:
    rows = session.execute(
        select(Job.id, Job.kind, Job.attempts, Job.max_attempts)
        # Kinds this process does not know (a newer release's) are left to one that does.
        .where(Job.status == JobStatus.RUNNING, Job.lease_until < func.now(), Job.kind.in_(KINDS))
        .limit(BATCH)
        .with_for_update(skip_locked=True)
    ).all()
    requeued: list[tuple[uuid.UUID, JobKind]] = []
    dead = 0
    for row in rows:
        if row.attempts >= row.max_attempts:
            dead += lifecycle.fail(session, row.id, None, DEAD_LETTER)
        elif lifecycle.requeue(session, row.id, None, reason="lease_expired"):
            requeued.append((row.id, KINDS[row.kind]))
    return requeued, dead


def _stale_queued(session: Session, settings: Settings) -> list[tuple[uuid.UUID, JobKind]]:
    now = func.now()
    rows = session.execute(
        select(Job.id, Job.kind)
        .where(
            Job.status == JobStatus.QUEUED,
            Job.kind.in_(KINDS),
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
    return [(row.id, KINDS[row.kind]) for row in rows]


def reconcile(celery: Celery) -> ReconcileReport | None:
    rt = runtime()
    with rt.db.transaction() as session:
        if not session.scalar(select(func.pg_try_advisory_xact_lock(LOCK_KEY))):
            log.info("another reconciler is running; skipping")
            return None
        requeued, dead = _take_back_expired(session)
        to_send = requeued + _stale_queued(session, rt.settings)
    # Published after the commit: a worker must find the job queued when the message lands.
    sent = publish_committed(celery, rt.db, to_send)
    report = ReconcileReport(resent=len(sent), requeued=len(requeued), dead_lettered=dead)
    if to_send or dead:
        log.info("reconciled: %s", report)
    return report
