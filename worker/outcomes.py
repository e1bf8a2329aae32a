"""How a job's end shows in Celery, and so in Flower.

A job's outcome is written to PostgreSQL before its task ends; the task then ends in
the state that matches, so Flower's counters agree with the job list:

- succeeded: SUCCESS;
- failed: FAILURE, with the job's error type and message, never a stack trace
  (`worker.requests` drops the one Celery would send);
- cancelled: REVOKED (`worker.requests`);
- requeued for a retry: RETRY. No message is sent with it: the job waits in PostgreSQL
  until its `run_after`, then in its tenant's line, and is dispatched from there;
- a delivery the claim turned away (a duplicate, a cancelled job, one another attempt
  holds), or an attempt that lost its lease: no state of its own (Celery's `Ignore`),
  since the job's own attempt reports how it ended.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from celery.exceptions import Ignore, Retry

from core.jobs.lifecycle import JobError
from core.jobs.messages import JobMessage


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RETRYING = "retrying"
    NOT_OURS = "not_ours"


@dataclass(frozen=True)
class Ended:
    outcome: Outcome
    attempt: int | None = None
    error: JobError | None = None
    retry_in: float | None = None
    tenant_id: uuid.UUID | None = None
    # Webhook deliveries the job's end queued in its tenant's `webhooks` line.
    webhooks: int = 0
    # The jobs the write of the job's end gave the slot it freed (to publish), or None
    # when that write left the hand-off to be done after it.
    handed_on: tuple[JobMessage, ...] | None = None


NOT_OURS = Ended(Outcome.NOT_OURS)


class JobFailed(Exception):
    """The task's FAILURE: the job failed. Its text is the error's type, which is what
    Celery logs; the message (it may quote what a tenant or a server sent) goes only to
    Flower, in the task-failed event (`worker.requests`)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(error_type, message)
        self.error_type = error_type
        self.message = message

    def __str__(self) -> str:
        return self.error_type

    def __repr__(self) -> str:
        return f"JobFailed({self.error_type!r})"

    def shown(self) -> str:
        """What Flower shows: the error as the job's owner sees it."""
        return f"JobFailed({self.error_type + ': ' + self.message!r})"


class AttemptFailed(Exception):
    """Why a task ended RETRY: the attempt failed (this error type) and the job will
    run again."""


class JobRevoked(Exception):
    """Ends the task REVOKED (`worker.requests`): the job was cancelled."""


def end_task(ended: Ended) -> dict[str, Any]:
    """Return, or raise what ends the task in the state of how its job ended."""
    error_type = ended.error.type if ended.error else ""
    match ended.outcome:
        case Outcome.SUCCEEDED:
            return {"job": "succeeded", "attempt": ended.attempt}
        case Outcome.FAILED:
            raise JobFailed(error_type, ended.error.message if ended.error else "")
        case Outcome.CANCELLED:
            raise JobRevoked("cancelled")
        case Outcome.RETRYING:
            when = datetime.now(UTC) + timedelta(seconds=ended.retry_in or 0)
            raise Retry(error_type, exc=AttemptFailed(error_type), when=when)
        case Outcome.NOT_OURS:
            raise Ignore()
