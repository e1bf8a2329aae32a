"""Deliveries: each a `webhooks.deliver` job, and the log of their attempts.

The job protocol carries a delivery: its lease, its retries (held in PostgreSQL until
`run_after`), its tenant's cap in the `webhooks` queue. This module writes what the
protocol does not know: each attempt's answer, the endpoint's health, and the
deliveries made on request (a test event, a redelivery).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.orm import Session

from core.errors import ConveyorError, ErrorCode
from core.jobs.contracts import WEBHOOK_DELIVER
from core.jobs.submit import Publisher, Submitted, submit
from core.models import Job, Membership, Role, User, WebhookAttempt, WebhookEndpoint
from core.pagination import decode_cursor, encode_cursor
from core.settings import Settings
from core.webhooks.endpoints import FAILING
from core.webhooks.events import TEST_EVENT, test_message_id

# What the log keeps of an answer's body.
EXCERPT_BYTES = 1024


@dataclass(frozen=True)
class Answer:
    """How one attempt went: the receiver's status code, or the error that stopped it."""

    status_code: int | None
    latency_ms: int
    excerpt: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def record_attempt(
    session: Session,
    *,
    delivery_id: uuid.UUID,
    tenant_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    message_id: str,
    event: str,
    job_id: uuid.UUID | None,
    attempt: int,
    started_at: datetime,
    answer: Answer,
) -> None:
    session.add(
        WebhookAttempt(
            id=uuid.uuid4(),
            tenant_id=tenant_id,
            endpoint_id=endpoint_id,
            delivery_id=delivery_id,
            message_id=message_id,
            event=event,
            job_id=job_id,
            attempt=attempt,
            status_code=answer.status_code,
            latency_ms=answer.latency_ms,
            error=answer.error[:500] if answer.error else None,
            response_excerpt=answer.excerpt,
            started_at=started_at,
        )
    )


def note_success(session: Session, endpoint_id: uuid.UUID) -> None:
    session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.failing_since.is_not(None))
        .values(failing_since=None)
    )


def note_failure(session: Session, endpoint_id: uuid.UUID, disable_after: float) -> bool:
    """Record that the endpoint is failing; True if it has failed for `disable_after`
    seconds, and is now disabled by this call."""
    since = session.scalar(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id)
        .values(failing_since=func.coalesce(WebhookEndpoint.failing_since, func.now()))
        .returning(WebhookEndpoint.failing_since)
    )
    if since is None or datetime.now(UTC) - since < timedelta(seconds=disable_after):
        return False
    return disable(session, endpoint_id, FAILING)


def disable(session: Session, endpoint_id: uuid.UUID, reason: str) -> bool:
    """True if this call disabled it (it was enabled)."""
    done = session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.disabled_at.is_(None))
        .values(disabled_at=func.now(), disabled_reason=reason)
        .returning(WebhookEndpoint.id)
    ).first()
    return done is not None


def managers(session: Session, endpoint_id: uuid.UUID) -> list[tuple[str, str]]:
    """(email, the endpoint's URL) for each active owner and admin of its tenant: who
    is told when it is disabled (not whoever created it, who may have left)."""
    rows = session.execute(
        select(User.email, WebhookEndpoint.url)
        .join(Membership, Membership.tenant_id == WebhookEndpoint.tenant_id)
        .join(User, User.id == Membership.user_id)
        .where(
            WebhookEndpoint.id == endpoint_id,
            User.is_active.is_(True),
            Membership.role.in_([Role.OWNER, Role.ADMIN]),
        )
        .order_by(User.email)
    ).all()
    return [(row.email, row.url) for row in rows]


def queue_delivery(
    session: Session,
    publisher: Publisher,
    settings: Settings,
    endpoint: WebhookEndpoint,
    *,
    event: str,
    message_id: str,
    job_id: uuid.UUID | None,
    occurred_at: datetime,
) -> Submitted:
    """A delivery made on request: a test event, or an event sent again."""
    return submit(
        session,
        publisher,
        tenant_id=endpoint.tenant_id,
        user_id=None,
        kind_name=WEBHOOK_DELIVER,
        raw_input={
            "endpoint_id": str(endpoint.id),
            "event": event,
            "message_id": message_id,
            "job_id": str(job_id) if job_id else None,
            "occurred_at": occurred_at.isoformat(),
        },
        settings=settings,
    )


def send_test(
    session: Session, publisher: Publisher, settings: Settings, endpoint: WebhookEndpoint
) -> Submitted:
    return queue_delivery(
        session,
        publisher,
        settings,
        endpoint,
        event=TEST_EVENT,
        message_id=test_message_id(),
        job_id=None,
        occurred_at=datetime.now(UTC),
    )


def redeliver(
    session: Session,
    publisher: Publisher,
    settings: Settings,
    endpoint: WebhookEndpoint,
    delivery_id: uuid.UUID,
) -> Submitted:
    """The event of an earlier delivery to this endpoint, sent again with the same
    `webhook-id`, so a receiver that has it already can tell."""
    original = session.scalar(
        select(Job).where(
            Job.id == delivery_id,
            Job.tenant_id == endpoint.tenant_id,
            Job.kind == WEBHOOK_DELIVER,
            Job.input["endpoint_id"].astext == str(endpoint.id),
        )
    )
    if original is None:
        raise ConveyorError(ErrorCode.WEBHOOK_DELIVERY_NOT_FOUND)
    spec: dict[str, Any] = original.input
    return queue_delivery(
        session,
        publisher,
        settings,
        endpoint,
        event=spec["event"],
        message_id=spec["message_id"],
        job_id=uuid.UUID(spec["job_id"]) if spec.get("job_id") else None,
        occurred_at=datetime.fromisoformat(spec["occurred_at"]),
    )


@dataclass(frozen=True)
class AttemptPage:
    items: list[WebhookAttempt]
    next_cursor: str | None


def attempts(
    session: Session,
    tenant_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    *,
    limit: int,
    cursor: str | None,
) -> AttemptPage:
    """The endpoint's attempts, newest first, `limit` at a time."""
    query = select(WebhookAttempt).where(
        WebhookAttempt.tenant_id == tenant_id, WebhookAttempt.endpoint_id == endpoint_id
    )
    if cursor is not None:
        started_at, last_id = decode_cursor(cursor)
        query = query.where(
            tuple_(WebhookAttempt.started_at, WebhookAttempt.id) < tuple_(started_at, last_id)
        )
    rows = list(
        session.scalars(
            query.order_by(WebhookAttempt.started_at.desc(), WebhookAttempt.id.desc()).limit(
                limit + 1
            )
        )
    )
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if more and rows else None
    return AttemptPage(rows, encode_cursor(last.started_at, last.id) if last else None)
