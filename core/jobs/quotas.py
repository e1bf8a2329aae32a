"""What one tenant may submit: a cap on its queued jobs and a submit rate limit.

Checked before anything is stored, on every route by which a client submits work (a
job, an agent run, an upload and its processing). A refusal is a 429 with
`Retry-After`, and the request leaves nothing behind. Concurrent submits are counted
against the rate limit exactly (the key-value store's hits are atomic), while the
queued-jobs cap is read as the request starts: submits racing each other can pass it
by as many jobs as they are.
"""

from __future__ import annotations

import uuid
from functools import cache
from typing import Any

from sqlalchemy import BindParameter, Select, bindparam, func, literal, select
from sqlalchemy.orm import Session

from core.errors import ConveyorError, ErrorCode
from core.jobs.contracts import Queue
from core.jobs.states import JobStatus
from core.jobs.submit import key_used
from core.kv import KeyValueStore
from core.models import Job
from core.settings import Settings

# What a tenant at its queued-jobs quota is told to wait: its jobs run as slots free,
# at a pace this process cannot see.
QUEUED_QUOTA_RETRY_SECONDS = 10


@cache
def _queued_statement() -> Select[Any]:
    """The tenant's queued jobs, counted up to the quota and no further: each line of
    waiting jobs, then the ones sent (at most its cap per queue), both by index.
    Webhook deliveries are Conveyor's work, not the tenant's submits: a receiver down
    for a day must not stop its tenant from submitting."""
    tenant_id: BindParameter[Any] = bindparam("tenant_id")
    own = Job.queue != Queue.WEBHOOKS.value
    waiting = (
        select(literal(1))
        .where(Job.tenant_id == tenant_id, Job.status == JobStatus.QUEUED, own)
        .where(Job.dispatched_at.is_(None))
        .limit(bindparam("quota"))
        .subquery()
    )
    sent = select(func.count()).where(
        Job.tenant_id == tenant_id,
        Job.status == JobStatus.QUEUED,
        Job.dispatched_at.is_not(None),
        own,
    )
    return select(
        select(func.count()).select_from(waiting).scalar_subquery() + sent.scalar_subquery()
    )


def queued_jobs(session: Session, tenant_id: uuid.UUID, quota: int) -> int:
    return int(
        session.execute(_queued_statement(), {"tenant_id": tenant_id, "quota": quota}).scalar_one()
    )


def check_submit(
    session: Session,
    kv: KeyValueStore,
    settings: Settings,
    tenant_id: uuid.UUID,
    idempotency_key: str | None = None,
    count: int = 1,
) -> None:
    """Raise 429 if the tenant may not submit `count` jobs now (a batch: all of them,
    or none); else count them. A request repeated with its Idempotency-Key is answered
    with its job, and not counted."""
    if idempotency_key is not None and key_used(session, tenant_id, idempotency_key):
        return
    quota = settings.tenant_max_queued_jobs
    if quota:
        _never_fits(count, quota, "queued-jobs quota")
        queued = queued_jobs(session, tenant_id, quota)
        if queued + count > quota:
            raise ConveyorError(
                ErrorCode.QUEUED_JOBS_QUOTA_EXCEEDED,
                retry_after=QUEUED_QUOTA_RETRY_SECONDS,
                quota=quota,
                queued=queued,
            )
    limit = settings.tenant_submit_limit
    if limit:
        window = settings.tenant_submit_window_seconds
        _never_fits(count, limit, f"submit limit per {window:g} s")
        wait = kv.hit(f"submit:tenant:{tenant_id}", limit, window, cost=count)
        if wait is not None:
            raise ConveyorError(
                ErrorCode.SUBMIT_RATE_EXCEEDED, retry_after=wait, limit=limit, window_seconds=window
            )


def _never_fits(count: int, bound: int, what: str) -> None:
    """A batch larger than a bound would wait for ever: a 422, not a 429."""
    if count > bound:
        raise ConveyorError(
            ErrorCode.VALIDATION_FAILED,
            f"A batch may hold at most {bound} jobs: the tenant's {what}",
            errors=[{"field": "jobs", "message": f"at most {bound} items"}],
        )
