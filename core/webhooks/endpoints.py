"""A tenant's webhook endpoints: create, read, change, rotate the secret, delete.
Services flush, never commit; every query is scoped to the tenant."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import ConveyorError, ErrorCode
from core.models import WebhookEndpoint
from core.settings import Settings
from core.webhooks import signing, targets

# Why an endpoint was disabled (`disabled_reason`).
GONE = "gone"
FAILING = "failing"
MANUAL = "manual"


def check_url(settings: Settings, url: str) -> None:
    """A 422 unless webhooks may be sent to `url`: https (http too outside production),
    a host that resolves only to addresses they may reach (`core.webhooks.targets`)."""
    targets.check(
        url,
        allow_http=settings.is_dev,
        allow_private=settings.webhook_allow_private_targets,
    )


def create(
    session: Session,
    settings: Settings,
    *,
    tenant_id: uuid.UUID,
    created_by: uuid.UUID | None,
    url: str,
    events: list[str],
    kinds: list[str] | None,
    description: str,
) -> WebhookEndpoint:
    check_url(settings, url)
    count = session.scalar(
        select(func.count(WebhookEndpoint.id)).where(WebhookEndpoint.tenant_id == tenant_id)
    )
    if (count or 0) >= settings.webhook_max_endpoints:
        raise ConveyorError(
            ErrorCode.WEBHOOK_LIMIT_REACHED,
            f"A tenant may have {settings.webhook_max_endpoints} webhook endpoints",
            limit=settings.webhook_max_endpoints,
        )
    endpoint = WebhookEndpoint(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        created_by=created_by,
        url=url,
        events=events,
        kinds=kinds,
        description=description,
        secret=signing.new_secret(),
    )
    session.add(endpoint)
    session.flush()
    return endpoint


def get(session: Session, tenant_id: uuid.UUID, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    endpoint = session.scalar(
        select(WebhookEndpoint).where(
            WebhookEndpoint.id == endpoint_id, WebhookEndpoint.tenant_id == tenant_id
        )
    )
    if endpoint is None:
        raise ConveyorError(ErrorCode.WEBHOOK_NOT_FOUND)
    return endpoint


def list_all(session: Session, tenant_id: uuid.UUID) -> list[WebhookEndpoint]:
    return list(
        session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.tenant_id == tenant_id)
            .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
        )
    )


def update(
    session: Session,
    settings: Settings,
    endpoint: WebhookEndpoint,
    *,
    url: str | None = None,
    events: list[str] | None = None,
    kinds: list[str] | None = None,
    clear_kinds: bool = False,
    description: str | None = None,
    enabled: bool | None = None,
) -> WebhookEndpoint:
    if url is not None:
        check_url(settings, url)
        endpoint.url = url
    if events is not None:
        endpoint.events = events
    if kinds is not None or clear_kinds:
        endpoint.kinds = kinds
    if description is not None:
        endpoint.description = description
    if enabled is True:
        endpoint.disabled_at = None
        endpoint.disabled_reason = None
        endpoint.failing_since = None
    elif enabled is False and endpoint.disabled_at is None:
        endpoint.disabled_at = datetime.now(UTC)
        endpoint.disabled_reason = MANUAL
    session.flush()
    return endpoint


def rotate_secret(settings: Settings, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """A new secret; the current one keeps signing beside it for the grace period."""
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = datetime.now(UTC) + timedelta(
        seconds=settings.webhook_secret_grace_seconds
    )
    endpoint.secret = signing.new_secret()
    return endpoint


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets that sign a message sent `now`: the current one, and the one before
    a rotation while its grace period lasts."""
    found = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        found.append(endpoint.previous_secret)
    return found


def delete(session: Session, endpoint: WebhookEndpoint) -> None:
    session.delete(endpoint)
    session.flush()
