"""Webhook endpoints (where a tenant is told that its jobs finished) and the log of
every attempt to deliver to them. A delivery itself is a job (`webhooks.deliver`)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, CreatedAt, new_id

TZDateTime = DateTime(timezone=True)


class WebhookEndpoint(CreatedAt, Base):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(String(500), server_default="")
    events: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    # None: every kind.
    kinds: Mapped[list[str] | None] = mapped_column(ARRAY(String(100)))
    # `whsec_` + base64 of the key: it signs, so it is kept as it is, not hashed.
    secret: Mapped[str] = mapped_column(String(100))
    # The secret before the last rotation, still signing beside the new one until then.
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    # gone (the receiver answered 410), failing (for WEBHOOK_DISABLE_AFTER_SECONDS), manual
    disabled_reason: Mapped[str | None] = mapped_column(String(32))
    # Since when every attempt has failed; cleared by a success.
    failing_since: Mapped[datetime | None] = mapped_column(TZDateTime)
    updated_at: Mapped[datetime] = mapped_column(
        TZDateTime, server_default=func.now(), onupdate=func.now()
    )


class WebhookAttempt(Base):
    """One HTTP request to an endpoint: what was sent and how the receiver answered."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        Index(
            "ix_webhook_attempts_endpoint_started",
            "endpoint_id",
            text("started_at DESC"),
            text("id DESC"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    # Indexed for the cascade when a tenant is deleted.
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    # The `webhooks.deliver` job; not a foreign key, so the log outlives its retention.
    delivery_id: Mapped[uuid.UUID] = mapped_column(index=True)
    message_id: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(64))
    # The job the event is about; None for a test event.
    job_id: Mapped[uuid.UUID | None] = mapped_column()
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    # The first KiB of the answer's body, as text.
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(TZDateTime)
    finished_at: Mapped[datetime] = mapped_column(TZDateTime, server_default=func.now())
