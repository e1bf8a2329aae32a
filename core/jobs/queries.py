"""Reading jobs and events, always within one tenant."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import cache, partial
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, Select, and_, bindparam, or_, select
from sqlalchemy.orm import Session, defer

from core.errors import ConveyorError, ErrorCode
from core.identity import accounts
from core.identity.access import Principal
from core.jobs.states import JobStatus, WaitingReason, waiting_reason
from core.models import Job, JobEvent
from core.pagination import decode_cursor, encode_cursor
from core.prepared import Prepared


class JobRow(SimpleNamespace):
    """A job's columns as attributes, and its `waiting_reason`, as a `Job` has them:
    what an answer is built from where no ORM object is worth building."""

    # The columns read by name here and by the callers; the others are there too.
    id: uuid.UUID
    tenant_id: uuid.UUID | None
    kind: str
    status: str
    dispatched_at: datetime | None
    run_after: datetime | None

    @classmethod
    def of(cls, row: Any) -> JobRow:
        """From a row of every column of `jobs` (extra columns are kept too)."""
        return cls(**row._asdict())

    @classmethod
    def of_job(cls, job: Job) -> JobRow:
        return cls(**{column.key: getattr(job, column.key) for column in Job.__table__.c})

    @property
    def waiting_reason(self) -> WaitingReason | None:
        return waiting_reason(self.status, self.dispatched_at, self.run_after)


# One job of the tenant's, by `job_id` and `tenant_id`.
_IN_TENANT = (Job.id == bindparam("job_id"), Job.tenant_id == bindparam("tenant_id"))


@cache
def _job_in_tenant() -> Select[Job]:
    return select(Job).where(*_IN_TENANT)


def _job_row_in_tenant() -> Select[Any]:
    return select(*Job.__table__.c).where(*_IN_TENANT)


# The read a client polls with: prepared (`core.prepared`), and no ORM object built.
_JOB_ROW_IN_TENANT = Prepared("job_in_tenant", _job_row_in_tenant, required=("job_id", "tenant_id"))


def read_job(session: Session, tenant_id: uuid.UUID, job_id: uuid.UUID) -> JobRow:
    """The job as it is now, to answer with (`get_job` loads the `Job` itself)."""
    params = {"job_id": job_id, "tenant_id": tenant_id}
    rows = _JOB_ROW_IN_TENANT.execute(session, params)
    if not rows:
        raise ConveyorError(ErrorCode.JOB_NOT_FOUND)
    return JobRow.of(rows[0])


def _job_seen_by_member(*, tenant_named: bool) -> Select[Any]:
    membership = accounts.access_query(tenant_named=tenant_named).subquery("membership")
    return (
        select(*Job.__table__.c, membership.c.role.label("member_role"))
        .join(membership, membership.c.tenant_id == Job.tenant_id)
        .where(Job.id == bindparam("job_id"))
    )


# A user's poll: their check and the read in one statement (`read_job_as_member`).
_MEMBERS_JOB = {
    tenant_named: Prepared(
        f"members_job_{'named' if tenant_named else 'personal'}",
        partial(_job_seen_by_member, tenant_named=tenant_named),
        required=("user_id", "session_id", "job_id", *(("tenant_id",) if tenant_named else ())),
    )
    for tenant_named in (True, False)
}


def read_job_as_member(
    executor: Session | Connection,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    tenant_id: uuid.UUID | None,
    job_id: uuid.UUID,
) -> tuple[JobRow, Principal] | None:
    """The job, and the caller in its tenant, if login `session_id` of user `user_id`
    is live, the user belongs to the tenant (`tenant_id`, else their personal one) and
    the job is that tenant's: one statement, where a check and a read take two. None
    otherwise, and `accounts.tenant_access` tells which of those failed."""
    params: dict[str, Any] = {"user_id": user_id, "session_id": session_id, "job_id": job_id}
    if tenant_id is not None:
        params["tenant_id"] = tenant_id
    rows = _MEMBERS_JOB[tenant_id is not None].execute(executor, params)
    if not rows:
        return None
    columns = rows[0]._asdict()
    role = columns.pop("member_role")
    caller = accounts.member(columns["tenant_id"], user_id, session_id, role)
    return JobRow(**columns), caller


def get_job(session: Session, tenant_id: uuid.UUID, job_id: uuid.UUID) -> Job:
    params = {"job_id": job_id, "tenant_id": tenant_id}
    job = session.scalars(_job_in_tenant(), params).one_or_none()
    if job is None:
        raise ConveyorError(ErrorCode.JOB_NOT_FOUND)
    return job


@dataclass(frozen=True)
class Page:
    items: list[Job]
    next_cursor: str | None


def list_jobs(
    session: Session,
    tenant_id: uuid.UUID,
    *,
    limit: int,
    cursor: str | None = None,
    status: JobStatus | None = None,
    kind: str | None = None,
) -> Page:
    """Newest first; the cursor is the (created_at, id) of the last row seen. The rows
    come without their input and result (deferred: read on access), which listings
    leave out."""
    query = (
        select(Job).options(defer(Job.input), defer(Job.result)).where(Job.tenant_id == tenant_id)
    )
    if status is not None:
        query = query.where(Job.status == status)
    if kind is not None:
        query = query.where(Job.kind == kind)
    if cursor is not None:
        created, last_id = decode_cursor(cursor)
        query = query.where(
            or_(Job.created_at < created, and_(Job.created_at == created, Job.id < last_id))
        )
    rows = list(
        session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1))
    )
    more = len(rows) > limit
    items = rows[:limit]
    return Page(
        items=items, next_cursor=encode_cursor(items[-1].created_at, items[-1].id) if more else None
    )


def list_events(
    session: Session, tenant_id: uuid.UUID, job_id: uuid.UUID, *, after: int, limit: int
) -> list[JobEvent]:
    return list(
        session.scalars(
            select(JobEvent)
            .join(Job, Job.id == JobEvent.job_id)
            .where(Job.tenant_id == tenant_id, JobEvent.job_id == job_id, JobEvent.seq > after)
            .order_by(JobEvent.seq)
            .limit(limit)
        )
    )
