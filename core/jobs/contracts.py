"""Job kinds: the contract shared by the API (validates, enqueues by name) and the
worker (runs the handler). Adding a kind adds one entry here and one folder in
`worker/jobs/`.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from core.agents.workflows import AgentRunInput, AgentRunOutput
from core.settings import WEBHOOK_RETRIES

# The kinds' names, for every module that names one (handlers, submitters, tests).
ECHO = "diagnostics.echo"
SLEEP = "diagnostics.sleep"
UPLOAD_PROCESS = "uploads.process"
AGENT_RUN = "agents.run"
EMAIL_SEND = "email.send"
WEBHOOK_DELIVER = "webhooks.deliver"


class Queue(StrEnum):
    DEFAULT = "default"
    UPLOADS = "uploads"
    AGENTS = "agents"
    # Conveyor's own work (account email), read by a worker of its own that no tenant's
    # jobs can fill: a reset code is sent however long the tenants' backlog.
    SYSTEM = "system"
    # Webhook deliveries: a receiver slow to answer holds a slot here, never one of the
    # tenants' own jobs; each tenant's deliveries are capped like its jobs.
    WEBHOOKS = "webhooks"


@dataclass(frozen=True)
class JobKind:
    name: str
    queue: Queue
    description: str
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    # Hard limit for one attempt; the soft limit fires a little earlier.
    time_limit_seconds: int = 300
    # Internal kinds are created by Conveyor itself (account email, upload processing)
    # or through their own endpoint (agent runs), never through POST /jobs.
    internal: bool = False
    # Input fields that hold secrets (a reset code in an email body): overwritten once
    # the job has finished, so the database keeps them only while they are needed.
    secret_fields: tuple[str, ...] = ()
    # Input fields safe to show an operator in the monitor (Flower): settings and ids,
    # never a secret or what a tenant wrote (`core.jobs.messages`).
    shown_fields: tuple[str, ...] = ()
    # Its result and its step events hold what is in the tenant's uploads (rows of a
    # CSV, text an agent read): an API key needs the uploads:read scope to see them.
    reveals_uploads: bool = False
    # Attempts before it fails; None: JOB_MAX_ATTEMPTS.
    max_attempts: int | None = None

    @property
    def task_name(self) -> str:
        """The Celery task name; the API sends by name and never imports handlers."""
        return f"{self.name}.run"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EchoInput(BaseModel):
    """Any JSON object; returned unchanged."""

    model_config = ConfigDict(extra="allow")


class EchoOutput(BaseModel):
    model_config = ConfigDict(extra="allow")


MAX_SLEEP_SECONDS = 600


class SleepInput(Strict):
    seconds: float = Field(ge=0, le=MAX_SLEEP_SECONDS, description="How long to sleep.")


class SleepOutput(Strict):
    slept_seconds: float


MAX_EMAIL_SUBJECT_CHARS = 200
MAX_EMAIL_TEXT_CHARS = 100_000

# Line breaks (including the ones str.splitlines honours) and other control characters:
# in a header they would start a new header line (injection) or be refused by `email`.
_HEADER_UNSAFE = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")


class EmailInput(Strict):
    """One plain-text message to one address."""

    to: EmailStr = Field(description="The recipient's address.")
    subject: str = Field(min_length=1, max_length=MAX_EMAIL_SUBJECT_CHARS)
    text: str = Field(max_length=MAX_EMAIL_TEXT_CHARS, description="Plain-text body.")

    @field_validator("subject")
    @classmethod
    def _one_header_line(cls, value: str) -> str:
        if _HEADER_UNSAFE.search(value):
            raise ValueError("must not contain line breaks or control characters")
        return value


class EmailOutput(Strict):
    message_id: str
    # "outbox": written to a file because no SMTP server is configured (dev and test).
    transport: Literal["smtp", "outbox"]


class UploadProcessInput(Strict):
    upload_id: uuid.UUID


class DerivedFile(Strict):
    name: str = Field(description="Download at /api/v1/uploads/{id}/derived/{name}.")
    content_type: str
    size: int


class UploadProcessOutput(Strict):
    kind: str = Field(description="text, markdown, csv, json, pdf or image")
    content_type: str
    size: int
    sha256: str
    summary: dict[str, Any] = Field(description="What is in the file; depends on `kind`.")
    derived: list[DerivedFile]


class WebhookDeliverInput(Strict):
    """One event for one endpoint; made by Conveyor when a job ends (or by a test or
    a redelivery), never by a client."""

    endpoint_id: uuid.UUID
    event: str
    # The `webhook-id`: the same on every attempt and redelivery of the event.
    message_id: str
    # The job the event is about; None for a test event.
    job_id: uuid.UUID | None = None
    occurred_at: datetime


class WebhookDeliverOutput(Strict):
    status_code: int
    latency_ms: int


# The first attempt and its retries after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h
# (WEBHOOK_RETRY_DELAYS): about a day and a quarter before a delivery fails.
WEBHOOK_MAX_ATTEMPTS = WEBHOOK_RETRIES + 1


# A 1 GiB PDF or CSV can take a while; the limit stops a file that never finishes.
UPLOAD_TIME_LIMIT_SECONDS = 1800
# Above the longest AGENT_RUN_TIMEOUT_SECONDS allowed: the run's own limit fails it
# cleanly first; this hard limit only catches a worker that stopped responding.
AGENT_RUN_TIME_LIMIT_SECONDS = 900


KINDS: dict[str, JobKind] = {
    kind.name: kind
    for kind in (
        JobKind(
            name=ECHO,
            queue=Queue.DEFAULT,
            description="Returns its input. Checks the pipeline end to end.",
            input_model=EchoInput,
            output_model=EchoOutput,
            time_limit_seconds=60,
        ),
        JobKind(
            name=SLEEP,
            queue=Queue.DEFAULT,
            description="Sleeps, with a progress event every second; stops on cancel.",
            input_model=SleepInput,
            output_model=SleepOutput,
            shown_fields=("seconds",),
            time_limit_seconds=MAX_SLEEP_SECONDS + 60,
        ),
        JobKind(
            name=UPLOAD_PROCESS,
            queue=Queue.UPLOADS,
            description="Reads an uploaded file by its type: what it is and what is in it, "
            "with derived files (extracted text, a thumbnail).",
            input_model=UploadProcessInput,
            output_model=UploadProcessOutput,
            shown_fields=("upload_id",),
            time_limit_seconds=UPLOAD_TIME_LIMIT_SECONDS,
            internal=True,
            reveals_uploads=True,
        ),
        JobKind(
            name=AGENT_RUN,
            queue=Queue.AGENTS,
            description="Runs an agent workflow (see GET /api/v1/agents) against the "
            "configured model; submitted through POST /api/v1/agents/{workflow}/runs.",
            input_model=AgentRunInput,
            output_model=AgentRunOutput,
            shown_fields=("workflow",),
            time_limit_seconds=AGENT_RUN_TIME_LIMIT_SECONDS,
            internal=True,
            reveals_uploads=True,
        ),
        JobKind(
            name=EMAIL_SEND,
            queue=Queue.SYSTEM,
            description="Sends one account email (reset code, invitation) over SMTP.",
            input_model=EmailInput,
            output_model=EmailOutput,
            time_limit_seconds=120,
            internal=True,
            secret_fields=("text",),
            # Subjects are fixed texts (core.identity.mail); the address and body are not shown.
            shown_fields=("subject",),
        ),
        JobKind(
            name=WEBHOOK_DELIVER,
            queue=Queue.WEBHOOKS,
            description="Delivers one event to one webhook endpoint, signed per "
            "Standard Webhooks 1.0; made when a job ends.",
            input_model=WebhookDeliverInput,
            output_model=WebhookDeliverOutput,
            # Above WEBHOOK_TIMEOUT_SECONDS' highest value.
            time_limit_seconds=90,
            internal=True,
            shown_fields=("endpoint_id", "event", "message_id", "job_id"),
            max_attempts=WEBHOOK_MAX_ATTEMPTS,
        ),
    )
}


def get_kind(name: str) -> JobKind | None:
    return KINDS.get(name)


def public_kinds() -> list[JobKind]:
    """The kinds clients may submit."""
    return [kind for kind in KINDS.values() if not kind.internal]


def longest_time_limit() -> int:
    return max(kind.time_limit_seconds for kind in KINDS.values())
