"""A job as clients see it: in API answers and in webhook events alike."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.identity.access import Principal
from core.jobs.states import JobStatus, WaitingReason
from core.jobs.visibility import WITHHELD_FIELDS, withholds_uploads


class JobSummary(BaseModel):
    """A job as listings show it: everything but its input and result, which can be
    large; `GET /jobs/{id}` has them."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str
    status: JobStatus
    progress: float
    error: dict[str, Any] | None
    attempts: int
    max_attempts: int
    created_at: datetime
    run_after: datetime | None = Field(
        description="While it waits: not run before this (a delayed job, or a retry's "
        "backoff). Null once it has started."
    )
    waiting_reason: WaitingReason | None = Field(
        description="Why a queued job has not started: `scheduled` (its `run_after` is "
        "ahead), `tenant_limit` (due, waiting for one of its tenant's slots in its "
        "queue), `broker` (sent, waiting for a free worker). Null unless queued."
    )
    started_at: datetime | None
    finished_at: datetime | None
    cancel_requested_at: datetime | None


class JobOut(JobSummary):
    """A job in full."""

    input: dict[str, Any]
    result: dict[str, Any] | None
    withheld: list[str] = Field(
        default_factory=list,
        description="What this answer leaves out: `result` and `step_events` of a job "
        "about uploads, for an API key without the uploads:read scope.",
    )

    @classmethod
    def seen_by(cls, job: Any, principal: Principal) -> JobOut:
        """The job as `principal` may see it: the only way job answers are built."""
        out = cls.model_validate(job)
        if withholds_uploads(principal, job.kind):
            out = out.model_copy(update={"result": None, "withheld": list(WITHHELD_FIELDS)})
        return out
