"""What waits and what runs, read from PostgreSQL: the truth the metrics report.

Every API process reads the same rows, so any of them answers a scrape with the same
figures (a scrape through a load balancer included). The queries read only queued and
running jobs, through the partial indexes on those statuses, however long the history.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, and_, case, func, literal_column, or_, select
from sqlalchemy.orm import Session

from core.jobs.states import JobStatus, WaitingReason
from core.models import Job, Tenant

ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
# Labels for the jobs of no tenant (account email) and of the tenants past the top N.
SYSTEM = "system"
OTHER = "other"


@dataclass(frozen=True)
class Backlog:
    # (kind, queue, status) → queued or running jobs.
    jobs: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    # queue → seconds the oldest job sent to the broker has waited for a worker: since
    # it was sent, or requeued after it was.
    oldest_age: dict[str, float] = field(default_factory=dict)
    # (tenant id, `SYSTEM` or `OTHER`; status) → queued or running jobs.
    tenants: Counter[tuple[str, str]] = field(default_factory=Counter)
    # (queue, waiting reason) → queued jobs.
    waiting: Counter[tuple[str, str]] = field(default_factory=Counter)
    # (tenant id, `SYSTEM` or `OTHER`; waiting reason) → queued jobs.
    tenants_waiting: Counter[tuple[str, str]] = field(default_factory=Counter)


def _reason() -> ColumnElement[str | None]:
    """`core.jobs.states.waiting_reason` in SQL: NULL unless queued."""
    return case(
        (Job.status != JobStatus.QUEUED, None),
        (Job.dispatched_at.is_not(None), WaitingReason.BROKER.value),
        (Job.run_after > func.now(), WaitingReason.SCHEDULED.value),
        else_=WaitingReason.TENANT_LIMIT.value,
    )


def read_backlog(session: Session, top_tenants: int) -> Backlog:
    active = or_(*(Job.status == status for status in ACTIVE))
    # Sent and waiting for a worker: a job in its tenant's line waits for the tenant's
    # own slots, which more workers would not free (conveyor_tenant_jobs_waiting).
    sent = and_(Job.status == JobStatus.QUEUED, Job.dispatched_at.is_not(None))
    # Since it was sent, or put back (requeued) after it was.
    waiting_since = func.greatest(Job.queued_at, Job.dispatched_at)
    reason = _reason().label("reason")
    rows = session.execute(
        select(
            Job.kind,
            Job.queue,
            Job.status,
            reason,
            func.count(),
            func.extract("epoch", func.now() - func.min(waiting_since).filter(sent)),
        )
        .where(active)
        .group_by(Job.kind, Job.queue, Job.status, reason)
    ).all()
    backlog = Backlog()
    for kind, queue, status, why, count, age in rows:
        backlog.jobs[(kind, queue, status)] += count
        if why is not None:
            backlog.waiting[(queue, why)] += count
        if age is not None:
            backlog.oldest_age[queue] = max(backlog.oldest_age.get(queue, 0.0), float(age))

    per_tenant = (
        select(
            Job.tenant_id,
            func.count().filter(Job.status == JobStatus.QUEUED).label("queued"),
            func.count().filter(Job.status == JobStatus.RUNNING).label("running"),
            *(func.count().filter(_reason() == r.value).label(r.value) for r in WaitingReason),
        )
        .where(active)
        .group_by(Job.tenant_id)
        .subquery()
    )
    # The busiest tenants by name; everyone else in one series, so the number of series
    # stays bounded however many tenants there are. One pass over the active jobs: the
    # system's row (no tenant) sorts first, then the tenants, busiest first.
    rows = session.execute(
        select(per_tenant)
        .order_by(
            per_tenant.c.tenant_id.is_(None).desc(),
            literal_column("queued + running").desc(),
            per_tenant.c.tenant_id,
        )
        .limit(top_tenants + 1)
    ).all()
    system = [row for row in rows if row.tenant_id is None]
    busiest = [row for row in rows if row.tenant_id is not None][:top_tenants]
    for row in [*busiest, *system]:
        label = _tenant_label(row.tenant_id)
        backlog.tenants[(label, JobStatus.QUEUED.value)] = row.queued
        backlog.tenants[(label, JobStatus.RUNNING.value)] = row.running
        for r in WaitingReason:
            backlog.tenants_waiting[(label, r.value)] = getattr(row, r.value)
    for status in ACTIVE:
        total = sum(n for (_, _, s), n in backlog.jobs.items() if s == status)
        named = sum(n for (_, s), n in backlog.tenants.items() if s == status)
        backlog.tenants[(OTHER, status.value)] = total - named
    for r in WaitingReason:
        total = sum(n for (_, why), n in backlog.waiting.items() if why == r.value)
        named = sum(n for (_, why), n in backlog.tenants_waiting.items() if why == r.value)
        backlog.tenants_waiting[(OTHER, r.value)] = total - named
    return backlog


def _tenant_label(tenant_id: uuid.UUID | None) -> str:
    return SYSTEM if tenant_id is None else str(tenant_id)


@dataclass(frozen=True)
class LineState:
    """One tenant's line in one queue, as the monitor shows it."""

    tenant_id: uuid.UUID | None
    tenant_name: str
    queue: str
    running: int
    # waiting reason → queued jobs
    waiting: dict[str, int]


def read_lines(session: Session, limit: int) -> list[LineState]:
    """The lines with jobs queued or running, the most jobs waiting first."""
    reason = _reason()
    counts = [func.count().filter(reason == r.value).label(r.value) for r in WaitingReason]
    running = func.count().filter(Job.status == JobStatus.RUNNING).label("running")
    queued = func.count().filter(Job.status == JobStatus.QUEUED)
    rows = session.execute(
        select(Job.tenant_id, Tenant.name.label("tenant_name"), Job.queue, running, *counts)
        .outerjoin(Tenant, Tenant.id == Job.tenant_id)
        .where(or_(*(Job.status == status for status in ACTIVE)))
        .group_by(Job.tenant_id, Tenant.name, Job.queue)
        .order_by(queued.desc(), Job.queue)
        .limit(limit)
    ).all()
    return [
        LineState(
            tenant_id=row.tenant_id,
            tenant_name=SYSTEM if row.tenant_id is None else row.tenant_name,
            queue=row.queue,
            running=row.running,
            waiting={r.value: getattr(row, r.value) for r in WaitingReason},
        )
        for row in rows
    ]
