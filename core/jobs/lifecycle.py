"""Every change of a job's status: a compare-and-set UPDATE plus its event row, as one
statement (a data-modifying CTE), in the caller's transaction or on an autocommit
connection. The job protocol uses autocommit: one round trip, and a connection cut
mid-write (a host cut off) leaves no transaction open holding the job's row, which would
keep the reconciler and every other worker from it until the server noticed.

A CAS that matches no row means someone else moved the job first (a duplicate delivery,
a cancel, the reconciler); callers treat `None` as "not mine" and stop. Writes by a
running attempt are fenced by `attempts`, so an attempt that lost its lease can never
overwrite the attempt that replaced it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    Connection,
    Insert,
    Interval,
    Row,
    Select,
    and_,
    bindparam,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from core.jobs.states import EventType, JobStatus, can_transition
from core.models import Job, JobEvent
from core.prepared import Prepared
from core.webhooks import outbox
from core.webhooks.events import EVENT_OF_STATUS

NOW = func.now()

# The hot single-statement writes (claim, succeed, heartbeat, enqueued) also run on a
# bare autocommit connection (`Database.autocommit`).
Executor = Session | Connection


@dataclass(frozen=True)
class JobError:
    """What a failed job shows its owner: never a stack trace."""

    type: str
    message: str
    retryable: bool

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "message": self.message, "retryable": self.retryable}

    @classmethod
    def from_dict(cls, recorded: dict[str, Any]) -> JobError:
        """An error as `as_dict` recorded it on the job."""
        return cls(recorded["type"], recorded["message"], bool(recorded.get("retryable")))


# What a job shows when the worker running it died with no attempts left.
WORKER_LOST = JobError(
    "worker_lost",
    "The worker running this job stopped responding and no attempts are left",
    retryable=False,
)


@dataclass(frozen=True)
class Claim:
    job_id: uuid.UUID
    tenant_id: uuid.UUID | None  # None for system jobs
    kind: str
    input: dict[str, Any]
    attempt: int
    max_attempts: int


def ended_as(session: Executor, job_id: uuid.UUID) -> tuple[JobStatus, JobError | None] | None:
    """How the job ended, with its error; None if it has not ended (or does not exist)."""
    row = session.execute(select(Job.status, Job.error).where(Job.id == job_id)).one_or_none()
    if row is None or row.status not in (
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
    ):
        return None
    return JobStatus(row.status), JobError.from_dict(row.error) if row.error else None


def append_event(
    session: Session, job_id: uuid.UUID, seq: int, type_: EventType, data: dict[str, Any]
) -> None:
    session.execute(
        _append_event_statement(), {"job_id": job_id, "seq": seq, "type": type_, "data": data}
    )


@cache
def _append_event_statement() -> Insert:
    return insert(JobEvent).values(
        job_id=bindparam("job_id"),
        seq=bindparam("seq"),
        type=bindparam("type"),
        data=bindparam("data", type_=JSONB),
    )


# What more a transition's statement does, given the statement and its CTE of the
# job it moved (`moved`, one row or none).
Extension = Callable[[Select[Any], CTE], Select[Any]]


def _statement(
    *,
    source: tuple[JobStatus, ...],
    target: JobStatus,
    values: dict[str, Any],
    where: tuple[ColumnElement[bool], ...] = (),
    extend: Extension | None = None,
) -> Select[Any]:
    """A compare-and-set on one job and its event row, as one statement (a
    data-modifying CTE): both happen, in one round trip, or neither when the CAS
    matches nothing. Parameters: `job_id`, `event`, and any bindparam in `values`."""
    # running → running is a lease takeover by a new attempt, not a status change.
    assert all(s == target or can_transition(s, target) for s in source), (source, target)
    moved = (
        update(Job)
        # OR of equalities, not IN: an IN list is re-rendered into the SQL on every
        # execution, which costs these hot statements more than running them.
        .where(Job.id == bindparam("job_id"), or_(*(Job.status == s for s in source)), *where)
        .values(status=target, event_seq=Job.event_seq + 1, updated_at=NOW, **values)
        .returning(
            Job.id,
            Job.tenant_id,
            Job.queue,
            Job.kind,
            Job.input,
            Job.attempts,
            Job.max_attempts,
            Job.event_seq,
        )
        .cte("moved")
    )
    data = func.jsonb_build_object("status", target.value, "attempt", moved.c.attempts).op("||")(
        bindparam("event", type_=JSONB)
    )
    logged = (
        insert(JobEvent)
        .from_select(
            ["job_id", "seq", "type", "data"],
            select(moved.c.id, moved.c.event_seq, literal(EventType.STATUS.value), data),
        )
        .cte("logged")
    )
    statement = select(moved).add_cte(logged)
    event = EVENT_OF_STATUS.get(target)
    if event is not None:
        # A job's end queues its webhooks in the same statement (`core.webhooks.outbox`).
        statement = outbox.with_deliveries(statement, moved, event)
    return statement if extend is None else extend(statement, moved)


TransitionRow = Row[Any]


def _transition(
    session: Executor,
    job_id: uuid.UUID,
    *,
    source: tuple[JobStatus, ...],
    target: JobStatus,
    values: dict[str, Any],
    event: dict[str, Any],
    where: tuple[ColumnElement[bool], ...] = (),
) -> TransitionRow | None:
    statement = _statement(source=source, target=target, values=values, where=where)
    row: TransitionRow | None = session.execute(
        statement, {"job_id": job_id, "event": event}
    ).one_or_none()
    return row


# The two statements every job runs, prepared (`core.prepared`): building one costs
# more CPU than PostgreSQL spends executing it, and planning it as much.
def _claim_statement() -> Select[Any]:
    return _statement(
        source=(JobStatus.QUEUED, JobStatus.RUNNING),
        target=JobStatus.RUNNING,
        values={
            "attempts": Job.attempts + 1,
            "lease_until": NOW + bindparam("lease", type_=Interval),
            "lease_owner": bindparam("owner"),
            "run_after": None,
            "started_at": NOW,
        },
        where=(
            Job.attempts < Job.max_attempts,
            or_(
                # Not before a retry's wait is over, nor while it waits for one of its
                # tenant's slots: a stray copy of a message can neither cut a backoff
                # short nor run a job past its tenant's cap.
                and_(
                    Job.status == JobStatus.QUEUED,
                    Job.dispatched_at.is_not(None),
                    or_(Job.run_after.is_(None), Job.run_after <= NOW),
                ),
                and_(Job.status == JobStatus.RUNNING, Job.lease_until < NOW),
            ),
        ),
    )


def succeed_statement(extend: Extension | None = None) -> Select[Any]:
    """running → succeeded, for the attempt `attempt`, with `result`."""
    return _statement(
        source=(JobStatus.RUNNING,),
        target=JobStatus.SUCCEEDED,
        values={
            "result": bindparam("result", type_=JSONB),
            "error": None,
            "progress": 1.0,
            "finished_at": NOW,
            "lease_until": None,
            "lease_owner": None,
        },
        where=(Job.attempts == bindparam("attempt"),),
        extend=extend,
    )


_CLAIM = Prepared("claim", _claim_statement, required=("job_id", "event", "lease", "owner"))
SUCCEED_PARAMS = ("job_id", "event", "attempt", "result")
_SUCCEED = Prepared("succeed", succeed_statement, required=SUCCEED_PARAMS)


def claim(session: Executor, job_id: uuid.UUID, lease_seconds: float, owner: str) -> Claim | None:
    """queued → running (or take over a running job whose lease expired), with the
    lease held by `owner` (see `lease_owner`)."""
    rows = _CLAIM.execute(
        session,
        {
            "job_id": job_id,
            "event": {},
            "lease": timedelta(seconds=lease_seconds),
            "owner": owner,
        },
    )
    if not rows:
        return None
    row = rows[0]
    return Claim(row.id, row.tenant_id, row.kind, row.input, row.attempts, row.max_attempts)


def held_claim(
    session: Executor, job_id: uuid.UUID, lease_seconds: float, owner: str
) -> Claim | None:
    """The claim `owner` already holds on the job, if any (a claim whose commit went
    through but whose answer was lost with the connection), with its lease extended as
    if it had just been made."""
    row = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.RUNNING, Job.lease_owner == owner)
        .values(lease_until=NOW + timedelta(seconds=lease_seconds))
        .returning(Job.id, Job.tenant_id, Job.kind, Job.input, Job.attempts, Job.max_attempts)
    ).one_or_none()
    if row is None:
        return None
    return Claim(row.id, row.tenant_id, row.kind, row.input, row.attempts, row.max_attempts)


def _fenced(attempt: int) -> tuple[ColumnElement[bool], ...]:
    return (Job.attempts == attempt,)


@dataclass(frozen=True)
class Finished:
    """A job's end, written, and the webhook deliveries it queued (in its tenant's line
    in the `webhooks` queue, for the writer to dispatch once committed)."""

    webhooks: int


def _finished(row: Row[Any] | None) -> Finished | None:
    return None if row is None else Finished(row.webhooks)


def succeed_params(job_id: uuid.UUID, attempt: int, result: dict[str, Any]) -> dict[str, Any]:
    return {"job_id": job_id, "event": {}, "attempt": attempt, "result": result}


def succeed(
    session: Executor, job_id: uuid.UUID, attempt: int, result: dict[str, Any]
) -> Finished | None:
    rows = _SUCCEED.execute(session, succeed_params(job_id, attempt, result))
    return _finished(rows[0] if rows else None)


def succeeded_by(session: Executor, job_id: uuid.UUID, attempt: int) -> bool:
    """Whether the job succeeded by that attempt."""
    status = session.execute(
        select(Job.status).where(Job.id == job_id, Job.attempts == attempt)
    ).scalar_one_or_none()
    return status == JobStatus.SUCCEEDED


def fail(
    session: Executor,
    job_id: uuid.UUID,
    attempt: int | None,
    error: JobError,
    held_by: str | None = None,
) -> Finished | None:
    """running → failed; `attempt=None` is a dead-letter (no fence) by the reconciler,
    or for a dead pool process that held the job (`held_by`, a `lease_owner` prefix)."""
    return _finished(
        _transition(
            session,
            job_id,
            source=(JobStatus.RUNNING,),
            target=JobStatus.FAILED,
            values={
                "error": error.as_dict(),
                "finished_at": NOW,
                "lease_until": None,
                "lease_owner": None,
            },
            event={"error": error.as_dict()},
            where=(*_fences(attempt, held_by),),
        )
    )


def _fences(attempt: int | None, held_by: str | None) -> tuple[ColumnElement[bool], ...]:
    fence = () if attempt is None else _fenced(attempt)
    if held_by is not None:
        fence = (*fence, Job.lease_owner.startswith(held_by, autoescape=True))
    return fence


def cancel_running(session: Executor, job_id: uuid.UUID, attempt: int) -> Finished | None:
    """The handler saw the cancel request at a checkpoint and stopped."""
    return _finished(
        _transition(
            session,
            job_id,
            source=(JobStatus.RUNNING,),
            target=JobStatus.CANCELLED,
            values={"finished_at": NOW, "lease_until": None, "lease_owner": None},
            event={},
            where=_fenced(attempt),
        )
    )


def requeue(
    session: Executor,
    job_id: uuid.UUID,
    attempt: int | None,
    *,
    reason: str,
    error: JobError | None = None,
    retry_in: float | None = None,
    held_by: str | None = None,
) -> JobStatus | None:
    """running → queued, for a retry (fenced) or an expired lease (reconciler), or
    because the pool process `held_by` (a `lease_owner` prefix) died under it.

    A retry (`retry_in`) gives up its slot and waits in PostgreSQL until its
    `run_after`, then in its tenant's line (`core.jobs.dispatch`); other requeues keep
    the slot and are the caller's to publish (a dead pool process's
    message is put back by Celery itself). A job whose owner asked to cancel it is not
    run again: it ends `cancelled` here, and the caller publishes nothing.

    Returns QUEUED or CANCELLED, or None when the job was not this attempt's (or
    process's) to requeue.
    """
    fence = _fences(attempt, held_by)
    event: dict[str, Any] = {"reason": reason}
    if error is not None:
        event["error"] = error.as_dict()
    if _transition(
        session,
        job_id,
        source=(JobStatus.RUNNING,),
        target=JobStatus.CANCELLED,
        values={"finished_at": NOW, "lease_until": None, "lease_owner": None},
        event=event,
        where=(*fence, Job.cancel_requested_at.is_not(None)),
    ):
        return JobStatus.CANCELLED
    values: dict[str, Any] = {
        "lease_until": None,
        "lease_owner": None,
        # Put back by Celery: the message is on its way (a lost one is found later).
        "enqueued_at": NOW if held_by is not None else None,
        "queued_at": NOW,
    }
    if retry_in is not None:
        event["retry_in_seconds"] = round(retry_in, 3)
        values["run_after"] = values["queued_at"] = NOW + timedelta(seconds=retry_in)
        # Its slot goes to the tenant's next job; once due, it waits in line for one.
        values["dispatched_at"] = None
    requeued = _transition(
        session,
        job_id,
        source=(JobStatus.RUNNING,),
        target=JobStatus.QUEUED,
        values=values,
        event=event,
        where=(*fence, Job.cancel_requested_at.is_(None)),
    )
    return None if requeued is None else JobStatus.QUEUED


def take_back_from_dead(session: Session, job_id: uuid.UUID, held_by: str) -> bool:
    """The pool process `held_by` (a `lease_owner` prefix) died under the job: requeue
    it (reason `worker_lost`), or fail it with `worker_lost` when no attempts are left.
    False if that process did not hold it."""
    row = session.execute(
        select(Job.attempts, Job.max_attempts)
        .where(
            Job.id == job_id,
            Job.status == JobStatus.RUNNING,
            Job.lease_owner.startswith(held_by, autoescape=True),
        )
        .with_for_update()
    ).one_or_none()
    if row is None:
        return False
    if row.attempts >= row.max_attempts:
        fail(session, job_id, None, WORKER_LOST, held_by=held_by)
    else:
        requeue(session, job_id, None, reason="worker_lost", held_by=held_by)
    return True


# The event data of a cancel that came from the monitor (Flower's revoke).
REVOKED_FROM_MONITOR = {"reason": "revoked_from_monitor"}


def request_cancel(session: Session, tenant_id: uuid.UUID, job_id: uuid.UUID) -> Job | None:
    """Cancel a queued job at once, or flag a running one for its next checkpoint.
    Returns the job as it now is, or None if the tenant has no such job."""
    job = _locked(session, job_id, Job.tenant_id == tenant_id)
    if job is None:
        return None
    _cancel(session, job, stopped=False, event={})
    session.refresh(job)
    return job


def revoke(session: Session, job_id: uuid.UUID, *, stopped: bool) -> JobStatus | None:
    """A revoke from the monitor is a cancel, with an event that says so: as
    `request_cancel`, except that a running job whose process was `stopped` (killed)
    is cancelled outright. Returns the job's status now, None if there is no such job."""
    job = _locked(session, job_id)
    if job is None:
        return None
    _cancel(session, job, stopped=stopped, event=REVOKED_FROM_MONITOR)
    session.refresh(job)
    return JobStatus(job.status)


def _locked(session: Session, job_id: uuid.UUID, *where: ColumnElement[bool]) -> Job | None:
    """The job, its row locked, so a worker's concurrent requeue or finish cannot slip
    between reading its status and acting on it."""
    return session.scalars(
        select(Job)
        .where(Job.id == job_id, *where)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()


def _cancel(session: Session, job: Job, *, stopped: bool, event: dict[str, Any]) -> None:
    if job.status == JobStatus.QUEUED or (job.status == JobStatus.RUNNING and stopped):
        _transition(
            session,
            job.id,
            source=(JobStatus(job.status),),
            target=JobStatus.CANCELLED,
            values={
                "cancel_requested_at": func.coalesce(Job.cancel_requested_at, NOW),
                "finished_at": NOW,
                "lease_until": None,
                "lease_owner": None,
            },
            event=event,
        )
    elif job.status == JobStatus.RUNNING and job.cancel_requested_at is None:
        row = session.execute(
            update(Job)
            .where(Job.id == job.id)
            .values(cancel_requested_at=NOW, event_seq=Job.event_seq + 1, updated_at=NOW)
            .returning(Job.event_seq)
        ).one()
        append_event(session, job.id, row.event_seq, EventType.CANCEL_REQUESTED, event)
