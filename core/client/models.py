"""What the API answers, as typed objects. Fields the API adds later are kept (as extra
attributes), so an older client reads a newer server."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

# A job in one of these states never changes again.
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


class Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class JobSummary(Model):
    """A job as listings show it: everything but `input` and `result`."""

    id: uuid.UUID
    kind: str
    status: str
    progress: float
    error: dict[str, Any] | None
    attempts: int
    max_attempts: int
    created_at: datetime
    run_after: datetime | None = None
    waiting_reason: str | None = None
    started_at: datetime | None
    finished_at: datetime | None
    cancel_requested_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES


class Job(JobSummary):
    input: dict[str, Any]
    result: dict[str, Any] | None
    # What this answer leaves out for the caller (see docs/api.md).
    withheld: list[str] = []


class JobPage(Model):
    items: list[JobSummary]
    next_cursor: str | None


class JobEvent(Model):
    """One entry of a job's event log; `seq` is dense per job, from 1."""

    seq: int
    type: str
    data: dict[str, Any]
    at: datetime

    @property
    def ends_job(self) -> bool:
        """The job's terminal status event: nothing follows it."""
        return self.type == "status" and self.data.get("status") in TERMINAL_STATUSES


class EventPage(Model):
    items: list[JobEvent]
    next_after: int


class BatchItem(Model):
    """One answer of a batch submit, in the order sent: the job, or why it was refused
    (a problem+json body)."""

    job: Job | None = None
    replayed: bool = False
    error: dict[str, Any] | None = None


class JobKind(Model):
    name: str
    queue: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]


class Upload(Model):
    id: uuid.UUID
    filename: str
    content_type: str
    declared_content_type: str | None
    size: int
    sha256: str | None
    status: str
    created_at: datetime
    completed_at: datetime | None


class Derived(Model):
    name: str
    content_type: str
    size: int
    url: str


class UploadDetail(Upload):
    job: Job | None
    derived: list[Derived]


class UploadCreated(Model):
    """A stored upload and the job that processes it."""

    upload: Upload
    job: Job


class UploadPage(Model):
    items: list[Upload]
    next_cursor: str | None


class PresignedUpload(Model):
    upload_id: uuid.UUID
    url: str
    method: str
    headers: dict[str, str]
    expires_at: datetime


class Workflow(Model):
    name: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]


class ApiKey(Model):
    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKey):
    secret: str


class Webhook(Model):
    id: uuid.UUID
    url: str
    description: str
    events: list[str]
    kinds: list[str] | None
    enabled: bool
    disabled_at: datetime | None
    disabled_reason: str | None
    failing_since: datetime | None
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


class WebhookCreated(Webhook):
    secret: str


class SecretRotated(Model):
    secret: str
    previous_secret_expires_at: datetime


class WebhookAttempt(Model):
    id: uuid.UUID
    delivery_id: uuid.UUID
    message_id: str
    event: str
    job_id: uuid.UUID | None
    attempt: int
    status_code: int | None
    latency_ms: int
    error: str | None
    response_excerpt: str | None
    started_at: datetime
    finished_at: datetime


class WebhookAttemptPage(Model):
    items: list[WebhookAttempt]
    next_cursor: str | None


class Tokens(Model):
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int


class Membership(Model):
    id: uuid.UUID
    name: str
    personal: bool
    role: str


class User(Model):
    id: uuid.UUID
    email: str
    created_at: datetime
    personal_tenant_id: uuid.UUID
    tenants: list[Membership]
