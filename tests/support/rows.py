"""Reading and clearing rows straight in the database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from psycopg2.errors import DeadlockDetected
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError

from core.db import Database
from core.jobs import lifecycle
from core.models import Base, Job, JobEvent

DEADLOCK_RETRIES = 5


def job_state(db: Database, job_id: uuid.UUID) -> tuple[Job, list[JobEvent]]:
    with db.transaction() as session:
        job = session.get_one(Job, job_id)
        events = list(
            session.scalars(
                select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.seq)
            )
        )
        return job, events


def end_retry_wait(db: Database, job_id: uuid.UUID) -> None:
    """A retry's backoff, over now, and its job given a slot as the reconciler's sweep
    would: it may be claimed at once."""
    with db.transaction() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(run_after=func.now(), dispatched_at=func.now())
        )


def finish_unhanded(db: Database, job_id: uuid.UUID) -> None:
    """The job claimed and succeeded as a worker would, which then dies before it hands
    its tenant's slot on (core.jobs.dispatch)."""
    with db.autocommit() as connection:
        claim = lifecycle.claim(connection, job_id, 30, "dying/1/0")
        assert claim is not None
        assert lifecycle.succeed(connection, job_id, claim.attempt, {})


def empty_tables(db: Database) -> None:
    """Delete every row of every table, children first.

    DELETE rather than TRUNCATE, and one table per statement, each committed on its own:
    a worker process still finishing the previous test's job may hold row locks, and a
    DELETE waits only for the rows it shares with it, never holding one table while
    waiting on another. Should the database still pick this statement to break a
    deadlock, it is run again."""
    for table in reversed(Base.metadata.sorted_tables):
        for attempt in range(DEADLOCK_RETRIES):
            try:
                with db.autocommit() as connection:
                    connection.execute(table.delete())
                break
            except OperationalError as exc:
                if not isinstance(exc.orig, DeadlockDetected) or attempt == DEADLOCK_RETRIES - 1:
                    raise


def add_finished_job(
    db: Database,
    kind: str,
    status: str,
    *,
    waited: float | None,
    ran: float | None,
    finished_ago: timedelta,
    attempts: int = 1,
) -> uuid.UUID:
    """A finished job's row of `kind` (no worker need know it), that waited `waited`
    seconds and ran `ran` (None: never started), finished `finished_ago`."""
    finished_at = datetime.now(UTC) - finished_ago
    started_at = None if ran is None else finished_at - timedelta(seconds=ran)
    created_at = (started_at or finished_at) - timedelta(seconds=waited or 0)
    job = Job(
        id=uuid.uuid4(),
        kind=kind,
        queue="default",
        status=status,
        input={},
        max_attempts=3,
        attempts=attempts,
        created_at=created_at,
        started_at=started_at,
        finished_at=finished_at,
    )
    with db.transaction() as session:
        session.add(job)
    return job.id
