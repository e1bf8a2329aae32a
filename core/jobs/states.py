"""The job state machine: which status may follow which.

`queued → running → succeeded | failed | cancelled`; `running → queued` only through a
retry or the reconciler; terminal states never change.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})

TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED}),
    JobStatus.RUNNING: frozenset(
        {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.QUEUED}
    ),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}


def can_transition(source: JobStatus, target: JobStatus) -> bool:
    return target in TRANSITIONS[source]


class WaitingReason(StrEnum):
    """Why a queued job has not started (`core.jobs.dispatch`)."""

    # Its run_after is ahead: a delayed job, or a retry's backoff.
    SCHEDULED = "scheduled"
    # Due, and in its tenant's line for a slot in its queue (for a moment after a slot
    # frees, waiting for the hand-off).
    TENANT_LIMIT = "tenant_limit"
    # Published: waiting at the broker for a free worker.
    BROKER = "broker"


def waiting_reason(
    status: str, dispatched_at: datetime | None, run_after: datetime | None
) -> WaitingReason | None:
    if status != JobStatus.QUEUED:
        return None
    if dispatched_at is not None:
        return WaitingReason.BROKER
    if run_after is not None and run_after > datetime.now(UTC):
        return WaitingReason.SCHEDULED
    return WaitingReason.TENANT_LIMIT


class EventType(StrEnum):
    STATUS = "status"
    PROGRESS = "progress"
    CANCEL_REQUESTED = "cancel_requested"
    # The steps of an agent run, as they happen.
    AGENT = "agent"  # an agent became active
    MODEL_TURN = "model_turn"  # one model response, with its token counts
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"
    HANDOFF = "handoff"
