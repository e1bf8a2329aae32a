"""Publishing jobs whose rows are committed, with one failure policy for every caller.

A job is published only after the row that gives it a slot is committed. That statement
records it as sent (`enqueued_at`) too, since its publish follows the commit at once:
no second write per job. Nothing here raises. A publish that fails unmarks the jobs it
did not send, which stay queued, and the reconciler sends them after
`UNPUBLISHED_GRACE_SECONDS`. A dead broker stops the batch at once instead of making
every remaining job wait out its own connection timeout. A process that dies between
the commit and the publish leaves its jobs marked sent with no message: the
reconciler finds them as lost messages (`LOST_MESSAGE_GRACE_SECONDS`).

The reconciler's own re-sends (a publish that failed, a lost message, a job taken
back) are recorded after their publish.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from functools import cache, partial

from celery import Celery
from kombu.exceptions import OperationalError as BrokerUnavailable
from sqlalchemy import Update, bindparam, or_, tuple_, update

from core.db import Database
from core.jobs import dispatch
from core.jobs.celery_app import publish_job
from core.jobs.lifecycle import NOW, Executor
from core.jobs.messages import JobMessage
from core.jobs.queries import JobRow
from core.jobs.states import JobStatus
from core.models import Job

log = logging.getLogger("conveyor.publish")


# A job's message: (job id, attempts made before it), as an unmark is fenced.
Sent = tuple[uuid.UUID, int]


class PendingPublishes:
    """What a transaction leaves to do once it has committed (a
    `core.jobs.submit.Publisher`): the jobs it gave a slot, and the tenants' lines to
    dispatch (a job joined one, or left a slot free). `flush` does it all."""

    def __init__(self) -> None:
        self._jobs: list[JobMessage] = []
        self._lines: dict[dispatch.Line, list[JobRow]] = {}

    def publish_after_commit(self, message: JobMessage) -> None:
        self._jobs.append(message)

    def dispatch_after_commit(self, line: dispatch.Line, answered: Iterable[JobRow] = ()) -> None:
        """`answered`: jobs of the line the caller answers with, which show it if they
        are given a slot (`waiting_reason`)."""
        self._lines.setdefault(line, []).extend(answered)

    def committed(self, db: Database, default_cap: int) -> list[JobMessage]:
        """The transaction committed: the lines are dispatched now. The messages to
        send, in order. A line that cannot be dispatched now is left to the sweep."""
        jobs, self._jobs = self._jobs, []
        lines, self._lines = self._lines, {}
        if not lines:
            return jobs
        try:
            with db.autocommit() as connection:
                for (tenant_id, queue), answered in lines.items():
                    taken = dispatch.dispatch_line(connection, tenant_id, queue, default_cap)
                    jobs += taken
                    _show_dispatched(answered, {message.job_id for message in taken})
        except Exception as exc:
            log.warning("dispatch left to the reconciler's sweep (%s)", type(exc).__name__)
        return jobs

    def flush(self, celery: Celery, db: Database, default_cap: int) -> None:
        jobs = self.committed(db, default_cap)
        if jobs:
            publish_committed(celery, db, jobs, recorded=True)


def _show_dispatched(answered: list[JobRow], taken: set[uuid.UUID]) -> None:
    now = datetime.now(UTC)
    for job in answered:
        if job.id in taken:
            job.dispatched_at = now


def publish_committed(
    celery: Celery,
    db: Database,
    jobs: Sequence[JobMessage],
    *,
    recorded: bool = False,
) -> list[uuid.UUID]:
    """Publish each job and return the ids of the ones sent. `recorded`: the statement
    that dispatched them marked them sent, so the ones not sent are unmarked; else the
    ones sent are marked now."""
    sent: list[Sent] = []
    unsent: list[Sent] = []
    for index, message in enumerate(jobs):
        job_id = message.job_id
        try:
            publish_job(celery, message)
        except (BrokerUnavailable, OSError) as exc:
            log.warning(
                "broker unavailable (%s); %d job(s) left for the reconciler",
                type(exc).__name__,
                len(jobs) - index,
            )
            unsent += [(left.job_id, left.attempts) for left in jobs[index:]]
            break
        except Exception as exc:
            log.warning(
                "publish of job %s failed (%s); the reconciler will send it",
                job_id,
                type(exc).__name__,
            )
            unsent.append((job_id, message.attempts))
            continue
        sent.append((job_id, message.attempts))
    if recorded and unsent:
        _record(db, partial(mark_unsent, unsent=unsent), len(unsent))
    elif not recorded and sent:
        _record(db, partial(mark_enqueued, job_ids=[job_id for job_id, _ in sent]), len(sent))
    return [job_id for job_id, _ in sent]


def _record(db: Database, mark: Callable[[Executor], None], count: int) -> None:
    try:
        with db.autocommit() as session:  # one statement
            mark(session)
    except Exception as exc:
        # Left marked sent: the reconciler finds them as lost messages. Left unmarked: it
        # sends them again, and the claim turns the extra message away.
        log.warning("could not record the publish of %d job(s) (%s)", count, type(exc).__name__)


# Queued and dispatched: not a job requeued for a retry since (it waits for a message
# of its own, sent once it is due and dispatched again).
_AWAITING_MESSAGE = (
    Job.status == JobStatus.QUEUED,
    Job.dispatched_at.is_not(None),
    or_(Job.run_after.is_(None), Job.run_after <= NOW),
)


@cache
def _mark_enqueued_statement() -> Update:
    return (
        update(Job)
        .where(Job.id.in_(bindparam("job_ids", expanding=True)), *_AWAITING_MESSAGE)
        .values(enqueued_at=NOW)
    )


@cache
def _mark_unsent_statement() -> Update:
    unsent = tuple_(Job.id, Job.attempts).in_(bindparam("unsent", expanding=True))
    return update(Job).where(unsent, *_AWAITING_MESSAGE).values(enqueued_at=None)


def mark_enqueued(session: Executor, job_ids: list[uuid.UUID]) -> None:
    """Record that these jobs' messages were sent, just now."""
    if job_ids:
        session.execute(_mark_enqueued_statement(), {"job_ids": job_ids})


def mark_unsent(session: Executor, unsent: list[Sent]) -> None:
    """Unmark jobs their dispatch marked sent whose publish failed, for the reconciler
    to send: only where no attempt has claimed the job since (a publish may fail after
    the broker took the message)."""
    if unsent:
        session.execute(_mark_unsent_statement(), {"unsent": unsent})
