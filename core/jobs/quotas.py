"""What one tenant may submit: a cap on its queued jobs and a submit rate limit.

Checked before anything is stored, on every route by which a client submits work (a
job, an agent run, an upload and its processing). A refusal is a 429 with
`Retry-After`, and the request leaves nothing behind. Concurrent submits are counted
against the rate limit exactly (the key-value store's hits are atomic), while the
queued-jobs cap is read as the request starts: submits racing each other can pass it
by as many jobs as they are.

Counting a tenant's queued jobs costs a walk over them, so a process counts again only
when it needs to. Within `RECOUNT_SECONDS` of a count, a process lets through, without
counting, at most a hundredth of the quota, and only while that count plus what it let
through since stays a tenth below the quota. Near the quota every submit counts. What
other processes let through shows at their next count: unseen, it stays within the
tenth kept free while ten processes or fewer submit for one tenant, and past that
passes the quota by at most a hundredth of it per process.
"""

from __future__ import annotations

import threading
import time
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


# How long a count of a tenant's queued jobs stands in for the next ones, far from the
# quota; and how many tenants' counts a process keeps.
RECOUNT_SECONDS = 1.0
KEPT_COUNTS = 10_000


class RecentCounts:
    """Per tenant: when its queued jobs were last counted, the count, and the jobs this
    process let through since without counting (jobs that ended since only make the
    sum high)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[uuid.UUID, tuple[float, int, int]] = {}

    def admit(self, tenant_id: uuid.UUID, count: int, quota: int) -> bool:
        """Whether `count` more may go through on a recent count (and if so, they are
        added to what went through since)."""
        now = time.monotonic()
        with self._lock:
            seen = self._counts.get(tenant_id)
            if seen is None or now - seen[0] > RECOUNT_SECONDS:
                return False
            counted_at, queued, since = seen
            if since + count > quota // 100:
                return False
            if queued + since + count > quota - max(1, quota // 10):
                return False
            self._counts[tenant_id] = (counted_at, queued, since + count)
            return True

    def counted(self, tenant_id: uuid.UUID, queued: int, counted_at: float) -> None:
        """`queued`: the count, with the submit that made it if it went through."""
        with self._lock:
            if len(self._counts) >= KEPT_COUNTS:
                stale = counted_at - RECOUNT_SECONDS
                self._counts = {t: c for t, c in self._counts.items() if c[0] >= stale}
            self._counts[tenant_id] = (counted_at, queued, 0)


_recent = RecentCounts()


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
        _check_queued(session, tenant_id, count, quota)
    limit = settings.tenant_submit_limit
    if limit:
        window = settings.tenant_submit_window_seconds
        _never_fits(count, limit, f"submit limit per {window:g} s")
        wait = kv.hit(f"submit:tenant:{tenant_id}", limit, window, cost=count)
        if wait is not None:
            raise ConveyorError(
                ErrorCode.SUBMIT_RATE_EXCEEDED, retry_after=wait, limit=limit, window_seconds=window
            )


def _check_queued(session: Session, tenant_id: uuid.UUID, count: int, quota: int) -> None:
    if _recent.admit(tenant_id, count, quota):
        return
    counted_at = time.monotonic()
    queued = queued_jobs(session, tenant_id, quota)
    if queued + count > quota:
        _recent.counted(tenant_id, queued, counted_at)
        raise ConveyorError(
            ErrorCode.QUEUED_JOBS_QUOTA_EXCEEDED,
            retry_after=QUEUED_QUOTA_RETRY_SECONDS,
            quota=quota,
            queued=queued,
        )
    _recent.counted(tenant_id, queued + count, counted_at)


def _never_fits(count: int, bound: int, what: str) -> None:
    """A batch larger than a bound would wait for ever: a 422, not a 429."""
    if count > bound:
        raise ConveyorError(
            ErrorCode.VALIDATION_FAILED,
            f"A batch may hold at most {bound} jobs: the tenant's {what}",
            errors=[{"field": "jobs", "message": f"at most {bound} items"}],
        )
