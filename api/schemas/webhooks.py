"""Webhook endpoints and their delivery log, as the API takes and shows them."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator

from api.schemas.strings import NulFreeStr
from core.jobs.contracts import EMAIL_SEND, KINDS, WEBHOOK_DELIVER
from core.webhooks.events import Event
from core.webhooks.targets import MAX_URL_LENGTH

# The kinds whose jobs are a tenant's, and so whose ends an endpoint may ask for.
EVENT_KINDS = sorted(name for name in KINDS if name not in (EMAIL_SEND, WEBHOOK_DELIVER))


def _known_kinds(kinds: list[str] | None) -> list[str] | None:
    if kinds is None:
        return None
    unknown = sorted(set(kinds) - set(EVENT_KINDS))
    if unknown:
        raise ValueError(f"unknown job kinds {unknown}; known: {EVENT_KINDS}")
    return sorted(set(kinds))


def _distinct(events: list[Event] | None) -> list[Event] | None:
    return None if events is None else sorted(set(events))


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: NulFreeStr = Field(
        max_length=MAX_URL_LENGTH,
        examples=["https://example.com/hooks/conveyor"],
        description="Where events are POSTed: https, and a host that resolves to public "
        "addresses only.",
    )
    events: list[Event] = Field(min_length=1, description="The events to send.")
    kinds: list[NulFreeStr] | None = Field(
        default=None,
        min_length=1,
        description=f"Only jobs of these kinds (any of {EVENT_KINDS}); null: every kind.",
    )
    description: NulFreeStr = Field(default="", max_length=500)

    _events = field_validator("events")(_distinct)
    _kinds = field_validator("kinds")(_known_kinds)


class WebhookUpdate(BaseModel):
    """Only the fields sent change; `kinds: null` sends every kind again."""

    model_config = ConfigDict(extra="forbid")

    url: NulFreeStr | None = Field(default=None, max_length=MAX_URL_LENGTH)
    events: list[Event] | None = Field(default=None, min_length=1)
    kinds: list[NulFreeStr] | None = Field(default=None, min_length=1)
    description: NulFreeStr | None = Field(default=None, max_length=500)
    enabled: bool | None = Field(
        default=None,
        description="false disables the endpoint; true enables it again (after a 410, or "
        "after it was disabled for failing).",
    )

    _events = field_validator("events")(_distinct)
    _kinds = field_validator("kinds")(_known_kinds)


class WebhookOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    url: str
    description: str
    events: list[str]
    kinds: list[str] | None
    disabled_at: datetime | None
    disabled_reason: str | None = Field(
        description="`gone` (the receiver answered 410), `failing` (every attempt failed "
        "for WEBHOOK_DISABLE_AFTER_SECONDS) or `manual`."
    )
    failing_since: datetime | None
    previous_secret_expires_at: datetime | None = Field(
        description="After a rotation, the old secret signs beside the new one until then."
    )
    created_at: datetime
    updated_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def enabled(self) -> bool:
        """Whether events are sent to it."""
        return self.disabled_at is None


class WebhookCreated(WebhookOut):
    secret: str = Field(
        description="The signing secret (`whsec_…`), shown in this answer only: keep it "
        "where the receiver can read it."
    )


class SecretRotated(BaseModel):
    secret: str = Field(description="The new signing secret, shown in this answer only.")
    previous_secret_expires_at: datetime


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    delivery_id: uuid.UUID = Field(description="The `webhooks.deliver` job.")
    message_id: str = Field(description="The `webhook-id` header.")
    event: str
    job_id: uuid.UUID | None = Field(description="The job the event is about.")
    attempt: int
    status_code: int | None
    latency_ms: int
    error: str | None
    response_excerpt: str | None = Field(description="The answer's first KiB, as text.")
    started_at: datetime
    finished_at: datetime


class AttemptPage(BaseModel):
    items: list[AttemptOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")
