"""The reconciler: nothing submitted is ever lost.

It runs inside the beat process (see `worker.app`), not as a queued task, so it keeps
working when every worker slot is busy. A transaction-scoped advisory lock makes it a
singleton even if two beats run. It re-sends jobs whose publish failed or whose
message the broker lost, takes back jobs whose worker died (lease expired): requeued,
or failed once out of attempts, and fills the tenants' free slots (`core.jobs.dispatch`:
jobs waiting for a slot, delayed jobs and retries that came due).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from celery import Celery
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from core.db import Database
from core.jobs import dispatch, lifecycle, totals
from core.jobs.celery_app import ready_messages
from core.jobs.contracts import KINDS
from core.jobs.messages import MESSAGE_COLUMNS, JobMessage
from core.jobs.publishing import publish_committed
from core.jobs.states import JobStatus
from core.jobs.totals import Counted
from core.models import Job
from core.settings import Settings
from worker.resources import runtime

log = logging.getLogger("conveyor.reconciler")

LOCK_KEY = 0x636F6E76  # "conv"
# Its name in maintenance_runs (and in the metrics).
RECONCILER = "reconciler"
BATCH = 500


@dataclass(frozen=True)
class ReconcileReport:
    resent: int
    requeued: int
    dead_lettered: int
    # Of the resent: jobs whose message the broker had lost.
    lost: int


def _take_back_expired(session: Session) -> tuple[list[JobMessage], int]:
    rows = session.execute(
        select(*MESSAGE_COLUMNS, Job.max_attempts)
        # Kinds this process does not know (a newer release's) are left to one that does.
        .where(Job.status == JobStatus.RUNNING, Job.lease_until < func.now(), Job.kind.in_(KINDS))
        .limit(BATCH)
        .with_for_update(skip_locked=True)
    ).all()
    requeued: list[JobMessage] = []
    dead = 0
    for row in rows:
        if row.attempts >= row.max_attempts:
            dead += lifecycle.fail(session, row.id, None, lifecycle.WORKER_LOST) is not None
        elif lifecycle.requeue(session, row.id, None, reason="lease_expired") is JobStatus.QUEUED:
            requeued.append(JobMessage.of_row(row))
    return requeued, dead


def _unpublished(session: Session, settings: Settings) -> list[JobMessage]:
    """Dispatched jobs with no message: their publish failed, or the process that
    dispatched them died before it published them (past the grace period in which its
    publish and record may still land)."""
    grace = timedelta(seconds=settings.unpublished_grace_seconds)
    rows = session.execute(
        select(*MESSAGE_COLUMNS)
        .where(
            Job.status == JobStatus.QUEUED,
            Job.dispatched_at.is_not(None),
            Job.enqueued_at.is_(None),
            Job.kind.in_(KINDS),
            Job.updated_at < func.now() - grace,
            or_(Job.run_after.is_(None), Job.run_after <= func.now()),
        )
        .order_by(Job.created_at)
        .limit(BATCH)
        .with_for_update(skip_locked=True)
    ).all()
    return [JobMessage.of_row(row) for row in rows]


def _lost(db: Database, settings: Settings, celery: Celery) -> list[JobMessage]:
    """Queued jobs whose message the broker no longer has.

    A queue delivers in the order it was sent, so the messages waiting at the broker
    belong to the jobs published last. Of a queue's jobs still queued, newest message
    first, only as many as the broker holds messages can still be waiting for theirs;
    the ones after them, published more than the grace period ago, were lost (a broker
    restarted without persistence, a worker killed between taking a message and
    recording it). A backlog of any length is never mistaken for loss, and a lost
    message is sent again within the grace period and a round. A job taken by a worker
    and not yet claimed may be sent twice; the claim turns the copy away.

    The broker is asked with no row locked and no transaction open: a slow or dead
    broker holds up no claim or cancel.
    """
    queued = and_(Job.status == JobStatus.QUEUED, Job.enqueued_at.is_not(None))
    cutoff_at = func.now() - timedelta(seconds=settings.lost_message_grace_seconds)
    # Counted before the broker is asked: a job published in between makes the broker's
    # count larger, never smaller, so nothing waiting is taken for lost.
    with db.transaction() as session:
        counts = session.execute(
            select(
                Job.queue,
                func.count().filter(Job.enqueued_at >= cutoff_at),
                func.count().filter(Job.enqueued_at < cutoff_at),
                cutoff_at,
            )
            .where(queued)
            .group_by(Job.queue)
        ).all()
    recent = {row[0]: row[1] for row in counts}
    old = {row[0]: row[2] for row in counts if row[2]}
    if not old:
        return []
    cutoff = counts[0][3]  # the same instant in every row: the transaction's now()
    try:
        waiting = ready_messages(celery, old)
    except Exception as exc:  # the broker is down: nothing can be sent this round anyway
        log.info("broker queue lengths unavailable (%s)", type(exc).__name__)
        return []
    lost: list[JobMessage] = []
    with db.transaction() as session:
        if not session.scalar(select(func.pg_try_advisory_xact_lock(LOCK_KEY))):
            return []
        for queue, count in old.items():
            # Messages beyond the recent jobs' own may be the old jobs', newest first.
            covered = max(0, waiting.get(queue, 0) - recent.get(queue, 0))
            if count <= covered:
                continue
            rows = session.execute(
                select(*MESSAGE_COLUMNS)
                .where(queued, Job.queue == queue, Job.enqueued_at < cutoff, Job.kind.in_(KINDS))
                .order_by(Job.enqueued_at.desc())
                .offset(covered)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            ).all()
            lost += [JobMessage.of_row(row) for row in rows]
    return lost


def reconcile(celery: Celery) -> ReconcileReport | None:
    rt = runtime()
    with rt.db.transaction() as session:
        if not session.scalar(select(func.pg_try_advisory_xact_lock(LOCK_KEY))):
            log.info("another reconciler is running; skipping")
            return None
        requeued, dead = _take_back_expired(session)
        totals.count(session, Counted.LEASE_TAKEOVERS, len(requeued) + dead)
        unpublished = _unpublished(session, rt.settings)
    # Published after the commit: a worker must find the job queued when the message lands.
    sent = publish_committed(celery, rt.db, requeued + unpublished)
    # Free slots the hand-offs missed, and jobs whose time came.
    sent += publish_committed(
        celery, rt.db, dispatch.fill_free_slots(rt.db, rt.settings.tenant_concurrency)
    )
    lost = _lost(rt.db, rt.settings, celery)
    sent += publish_committed(celery, rt.db, lost)
    with rt.db.transaction() as session:
        totals.count(session, Counted.REPUBLISHED, len(sent))
        totals.record_run(session, RECONCILER, ok=True)
    report = ReconcileReport(
        resent=len(sent), requeued=len(requeued), dead_lettered=dead, lost=len(lost)
    )
    if sent or dead:
        log.info("reconciled: %s", report)
    return report
