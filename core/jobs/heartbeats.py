"""What a running attempt writes besides its outcome: heartbeats, progress and events.
Each extends the attempt's lease and answers whether to go on (the job was cancelled, or
is no longer this attempt's), fenced by the attempt number like every write of the
protocol (see `core.jobs.lifecycle`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any

from sqlalchemy import Interval, Select, String, bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import JSONB

from core.jobs.lifecycle import NOW, Executor
from core.jobs.states import EventType, JobStatus
from core.models import Job, JobEvent


@dataclass(frozen=True)
class Heartbeat:
    still_ours: bool
    cancel_requested: bool


def heartbeat(
    session: Executor, job_id: uuid.UUID, attempt: int, lease_seconds: float
) -> Heartbeat:
    """Extend the lease; tell the handler whether to go on."""
    row = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.RUNNING, Job.attempts == attempt)
        .values(lease_until=NOW + timedelta(seconds=lease_seconds))
        .returning(Job.cancel_requested_at)
    ).one_or_none()
    if row is None:
        return Heartbeat(still_ours=False, cancel_requested=False)
    return Heartbeat(still_ours=True, cancel_requested=row.cancel_requested_at is not None)


def report_progress(
    session: Executor,
    job_id: uuid.UUID,
    attempt: int,
    progress: float,
    message: str | None,
    lease_seconds: float,
) -> Heartbeat:
    """Record progress (an event) and extend the lease in the same statement."""
    progress = round(min(max(progress, 0.0), 1.0), 4)
    data: dict[str, Any] = {"progress": progress}
    if message is not None:
        data["message"] = message
    return _report(
        session, job_id, attempt, EventType.PROGRESS, data, lease_seconds, progress=progress
    )


def report_event(
    session: Executor,
    job_id: uuid.UUID,
    attempt: int,
    type_: EventType,
    data: dict[str, Any],
    lease_seconds: float,
) -> Heartbeat:
    """Record a step of a running job (an agent's tool call, say) and extend the lease."""
    return _report(session, job_id, attempt, type_, data, lease_seconds)


def _report(
    session: Executor,
    job_id: uuid.UUID,
    attempt: int,
    type_: EventType,
    data: dict[str, Any],
    lease_seconds: float,
    progress: float | None = None,
) -> Heartbeat:
    """An event of the running attempt (with its progress, if given), the lease extended,
    and whether to go on: one statement, so on an autocommit connection it leaves no
    transaction open (and no row locked) if the connection is cut while it runs."""
    params: dict[str, Any] = {
        "job_id": job_id,
        "attempt": attempt,
        "lease": timedelta(seconds=lease_seconds),
        "type": type_.value,
        "data": data,
    }
    if progress is not None:
        params["progress"] = progress
    row = session.execute(_report_statement(progress is not None), params).one_or_none()
    if row is None:
        return Heartbeat(still_ours=False, cancel_requested=False)
    return Heartbeat(still_ours=True, cancel_requested=row.cancel_requested_at is not None)


@cache
def _report_statement(with_progress: bool) -> Select[Any]:
    values: dict[str, Any] = {"progress": bindparam("progress")} if with_progress else {}
    moved = (
        update(Job)
        .where(
            Job.id == bindparam("job_id"),
            Job.status == JobStatus.RUNNING,
            Job.attempts == bindparam("attempt"),
        )
        .values(
            **values,
            event_seq=Job.event_seq + 1,
            updated_at=NOW,
            lease_until=NOW + bindparam("lease", type_=Interval),
        )
        .returning(Job.id, Job.event_seq, Job.cancel_requested_at)
        .cte("moved")
    )
    logged = (
        insert(JobEvent)
        .from_select(
            ["job_id", "seq", "type", "data"],
            select(
                moved.c.id,
                moved.c.event_seq,
                bindparam("type", type_=String),
                bindparam("data", type_=JSONB),
            ),
        )
        .cte("logged")
    )
    return select(moved.c.cancel_requested_at).add_cte(logged)
