"""Publishing jobs whose rows are committed, with one failure policy for every caller.

A job is published only after its `queued` row is committed, then `enqueued_at` is
recorded. Nothing here raises: a job whose publish or record fails stays queued, and the
reconciler sends it again. A dead broker stops the batch at once instead of making every
remaining job wait out its own connection timeout.

The reconciler re-sends a queued job with no `enqueued_at` once its grace period has
passed, so a record that comes late, or never (the process died), costs at most a
duplicate message, which the claim turns away. That is what lets the API record in
batches, in the background (`EnqueuedRecorder`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from functools import cache, partial

from celery import Celery
from celery.events.dispatcher import EventDispatcher
from kombu.exceptions import OperationalError as BrokerUnavailable
from sqlalchemy import Update, bindparam, or_, tuple_, update

from core.db import Database
from core.jobs import dispatch
from core.jobs.background_batch import BackgroundBatch
from core.jobs.celery_app import publish_job
from core.jobs.lifecycle import NOW, Executor
from core.jobs.messages import JobMessage
from core.jobs.queries import JobRow
from core.jobs.sent_events import SentEvents
from core.jobs.states import JobStatus
from core.models import Job
from core.settings import Settings

log = logging.getLogger("conveyor.publish")


# A job's message sent: (job id, attempts made before it), as a late record is fenced.
Sent = tuple[uuid.UUID, int]
Record = Callable[[list[Sent]], None]


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

    def flush(self, publisher: JobPublisher, default_cap: int) -> None:
        jobs = self.committed(publisher.db, default_cap)
        if jobs:
            publisher.publish(jobs)


def _show_dispatched(answered: list[JobRow], taken: set[uuid.UUID]) -> None:
    now = datetime.now(UTC)
    for job in answered:
        if job.id in taken:
            job.dispatched_at = now


def publish_committed(
    celery: Celery,
    db: Database,
    jobs: Sequence[JobMessage],
    record: Record | None = None,
    events: EventDispatcher | None = None,
) -> list[uuid.UUID]:
    """Publish each job, record the ones sent (now, in `db`, unless `record` is
    given), and return their ids. `events`: where their task-sent events go (at once
    with each message, unless given)."""
    sent: list[Sent] = []
    for message in jobs:
        job_id = message.job_id
        try:
            publish_job(celery, message, events)
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
        sent.append((job_id, message.attempts))
    if sent:
        (record or partial(record_enqueued, db))(sent)
    return [job_id for job_id, _ in sent]


def record_enqueued(db: Database, sent: list[Sent], *, late: bool = False) -> None:
    """`late`: the record may come after the job has moved on (see `mark_sent`)."""
    try:
        with db.autocommit() as session:  # one statement
            if late:
                mark_sent(session, sent)
            else:
                mark_enqueued(session, [job_id for job_id, _ in sent])
    except Exception as exc:
        log.warning("could not record the publish of %d job(s) (%s)", len(sent), type(exc).__name__)


# How long a record waits to gather others. Long enough that a job a worker takes at
# once is claimed first and needs no record at all (the late record skips it, and its
# row gets one version fewer); never more than a quarter of the grace after which the
# reconciler takes an unrecorded job for unpublished and sends it again.
RECORD_INTERVAL_SECONDS = 1.0


def record_interval(settings: Settings) -> float:
    return min(RECORD_INTERVAL_SECONDS, settings.unpublished_grace_seconds / 4)


class EnqueuedRecorder(BackgroundBatch[Sent]):
    """Records `enqueued_at` in the background: one UPDATE per `interval` for every
    job published in it, instead of one per request. A late record skips any job an
    attempt has claimed since its message was sent (`mark_sent`)."""

    def __init__(self, db: Database, interval: float = RECORD_INTERVAL_SECONDS) -> None:
        super().__init__(partial(record_enqueued, db, late=True), interval, "enqueued-recorder")

    def record(self, sent: list[Sent]) -> None:
        self.add(sent)  # at once if no batch is coming (closed)


class JobPublisher:
    """How a process publishes committed jobs: each job's message at once; the record
    that it was sent (`EnqueuedRecorder`) and its task-sent event for the monitor
    (`SentEvents`) in batches, off the caller's path. One per process."""

    def __init__(self, celery: Celery, db: Database, settings: Settings) -> None:
        self.celery = celery
        self.db = db
        self.recorder = EnqueuedRecorder(db, record_interval(settings))
        self.events = SentEvents(celery)

    def publish(self, jobs: Sequence[JobMessage]) -> list[uuid.UUID]:
        return publish_committed(
            self.celery, self.db, jobs, record=self.recorder.record, events=self.events
        )

    def close(self) -> None:
        """Write what is pending; later publishes record and announce theirs at once."""
        self.recorder.close()
        self.events.close()


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
def _mark_sent_statement() -> Update:
    sent = tuple_(Job.id, Job.attempts).in_(bindparam("sent", expanding=True))
    return update(Job).where(sent, *_AWAITING_MESSAGE).values(enqueued_at=NOW)


def mark_enqueued(session: Executor, job_ids: list[uuid.UUID]) -> None:
    """Record that these jobs' messages were sent, just now."""
    if job_ids:
        session.execute(_mark_enqueued_statement(), {"job_ids": job_ids})


def mark_sent(session: Executor, sent: list[Sent]) -> None:
    """Record messages sent a while ago: only for jobs no attempt has claimed since
    (a job claimed, failed and requeued since waits for another message, not this)."""
    if sent:
        session.execute(_mark_sent_statement(), {"sent": sent})
