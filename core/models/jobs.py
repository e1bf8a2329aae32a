"""Jobs and their append-only event log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.jobs.states import WaitingReason, waiting_reason
from core.models.base import Base, CreatedAt, new_id

TZDateTime = DateTime(timezone=True)


class Job(CreatedAt, Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name="status",
        ),
        CheckConstraint("progress >= 0 AND progress <= 1", name="progress"),
        UniqueConstraint("tenant_id", "idempotency_key"),
        # Listing: a tenant's jobs, newest first, with a stable tie-break for cursors.
        Index("ix_jobs_tenant_created", "tenant_id", text("created_at DESC"), text("id DESC")),
        # Reconciler: running jobs by lease, queued jobs by last publish.
        Index(
            "ix_jobs_running_lease",
            "lease_until",
            postgresql_where=text("status = 'running'"),
        ),
        # Fair dispatch (core.jobs.dispatch): each tenant's line of waiting jobs per
        # queue, in the order it is dispatched (so a dispatch reads only the jobs it
        # takes, however long the line), and the slots it holds.
        Index(
            "ix_jobs_line",
            "tenant_id",
            "queue",
            "queued_at",
            "created_at",
            postgresql_where=text("status = 'queued' AND dispatched_at IS NULL"),
        ),
        Index(
            "ix_jobs_holding",
            "tenant_id",
            "queue",
            postgresql_where=text(
                "status = 'running' OR (status = 'queued' AND dispatched_at IS NOT NULL)"
            ),
        ),
        Index(
            "ix_jobs_queued_enqueued",
            "enqueued_at",
            postgresql_where=text("status = 'queued'"),
        ),
        # Metrics: jobs finished since the last roll-up (core.jobs.totals).
        Index(
            "ix_jobs_finished",
            "finished_at",
            postgresql_where=text("finished_at IS NOT NULL"),
        ),
        # Housekeeping: finished system jobs by age.
        Index(
            "ix_jobs_system_finished",
            "finished_at",
            postgresql_where=text("tenant_id IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    # NULL for system jobs (such as account email), which no tenant can see.
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE")
    )
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(100))
    queue: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(16), server_default="queued")
    input: Mapped[dict[str, Any]] = mapped_column(JSONB)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    progress: Mapped[float] = mapped_column(Float, server_default=text("0"))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    max_attempts: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    # sha256 of the request that first used the idempotency key.
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    # X-Request-ID of the API request that submitted it: its log lines carry it.
    request_id: Mapped[str | None] = mapped_column(String(128))
    # Last seq handed out in job_events; bumped in the same UPDATE as the change it logs.
    event_seq: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    lease_until: Mapped[datetime | None] = mapped_column(TZDateTime)
    # Who holds the lease: `<worker node>/<pid>`, so a worker whose pool child died can
    # give back that child's lease at once, and only that child's.
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    # A queued job is not sent before this (a retry's backoff): held here, not as a
    # broker countdown sitting in one worker's memory.
    run_after: Mapped[datetime | None] = mapped_column(TZDateTime)
    # When it last became due to run: submitted, requeued, or its retry's run_after.
    # Its queue wait is counted from here (NULL on jobs from before it was kept).
    queued_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    # When it was given one of its tenant's slots in its queue, to be published; kept
    # while it runs. NULL while it waits: for its run_after, or for a slot.
    dispatched_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    enqueued_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    started_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    updated_at: Mapped[datetime] = mapped_column(
        TZDateTime, server_default=func.now(), onupdate=func.now()
    )

    @property
    def waiting_reason(self) -> WaitingReason | None:
        return waiting_reason(self.status, self.dispatched_at, self.run_after)


class JobEvent(Base):
    __tablename__ = "job_events"

    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    at: Mapped[datetime] = mapped_column(TZDateTime, server_default=func.now())
