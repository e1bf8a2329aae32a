"""The events an endpoint can subscribe to, and the id each message carries."""

from __future__ import annotations

import secrets
import uuid
from enum import StrEnum

from core.jobs.states import JobStatus


class Event(StrEnum):
    JOB_SUCCEEDED = "job.succeeded"
    JOB_FAILED = "job.failed"
    JOB_CANCELLED = "job.cancelled"


# Sent only by POST /webhooks/{id}/test, to whichever endpoint asked; never subscribed to.
TEST_EVENT = "webhook.test"

EVENT_OF_STATUS = {
    JobStatus.SUCCEEDED: Event.JOB_SUCCEEDED,
    JobStatus.FAILED: Event.JOB_FAILED,
    JobStatus.CANCELLED: Event.JOB_CANCELLED,
}


def job_message_id(job_id: uuid.UUID) -> str:
    """The `webhook-id` of the event a job's end sends: a job ends once, so this one
    id stands for that event on every attempt, redelivery and endpoint."""
    return f"msg_{job_id.hex}"


def test_message_id() -> str:
    return f"msg_test_{secrets.token_hex(12)}"
