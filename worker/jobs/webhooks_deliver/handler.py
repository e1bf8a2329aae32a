"""webhooks.deliver: one event to one endpoint, signed per Standard Webhooks 1.0.

Each attempt of the job is one HTTP request, logged in `webhook_attempts`. A 2xx
answer delivers it. A 410 disables the endpoint. Anything else (another status, a
timeout, a refused connection) is retried after `WEBHOOK_RETRY_DELAYS`, held in
PostgreSQL by the job protocol, until the attempts run out; an endpoint whose every
attempt has failed for `WEBHOOK_DISABLE_AFTER_SECONDS` is disabled, and its tenant's
owners and admins are emailed. The message keeps its `webhook-id` on every attempt.
"""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime
from typing import NoReturn

from sqlalchemy.orm import Session

from core.identity.mail import queue_email
from core.jobs.contracts import WEBHOOK_DELIVER, WebhookDeliverInput, WebhookDeliverOutput
from core.jobs.publishing import PendingPublishes
from core.models import WebhookEndpoint
from core.webhooks import deliveries, endpoints, payload, signing
from core.webhooks.deliveries import Answer
from core.webhooks.endpoints import GONE
from worker.context import JobContext
from worker.errors import PermanentJobError, TransientJobError
from worker.jobs.webhooks_deliver import transport

KIND = WEBHOOK_DELIVER

log = logging.getLogger("conveyor.worker")

JITTER = 0.1


def handle(ctx: JobContext, data: WebhookDeliverInput) -> WebhookDeliverOutput:
    settings = ctx.settings
    with ctx.db.transaction() as session:
        endpoint = session.get(WebhookEndpoint, data.endpoint_id)
        if endpoint is None or endpoint.tenant_id != ctx.tenant_id:
            raise PermanentJobError("The endpoint was deleted", type="endpoint_deleted")
        if endpoint.disabled_at is not None:
            raise PermanentJobError(
                f"The endpoint is disabled ({endpoint.disabled_reason})", type="endpoint_disabled"
            )
        try:
            body = (
                payload.job_event(
                    session,
                    data.event,
                    data.job_id,
                    data.occurred_at,
                    settings.webhook_max_result_bytes,
                )
                if data.job_id is not None
                else payload.test_event(endpoint.id, data.occurred_at)
            )
        except payload.JobGone as exc:
            raise PermanentJobError(
                "The job was deleted before its event was delivered", type="job_deleted"
            ) from exc
        url = endpoint.url
        now = datetime.now(UTC)
        secrets_ = endpoints.signing_secrets(endpoint, now)
    headers = signing.headers(secrets_, data.message_id, int(now.timestamp()), body)
    try:
        answer = transport.post(
            url,
            headers,
            body,
            allow_private=settings.webhook_allow_private_targets,
            connect_timeout=settings.webhook_connect_timeout_seconds,
            timeout=settings.webhook_timeout_seconds,
        )
    except transport.TargetRefused as exc:
        _record(ctx, data, now, Answer(None, 0, error=str(exc)))
        raise PermanentJobError(str(exc), type="webhook_url_refused") from exc
    _record(ctx, data, now, answer)
    if answer.ok:
        log.info("webhook %s to endpoint %s: %s", data.message_id, endpoint.id, answer.status_code)
        return WebhookDeliverOutput(
            status_code=answer.status_code or 0, latency_ms=answer.latency_ms
        )
    _failed(ctx, data, answer)


def _record(ctx: JobContext, data: WebhookDeliverInput, started: datetime, answer: Answer) -> None:
    assert ctx.tenant_id is not None  # deliveries are always a tenant's
    with ctx.db.transaction() as session:
        deliveries.record_attempt(
            session,
            delivery_id=ctx.job_id,
            tenant_id=ctx.tenant_id,
            endpoint_id=data.endpoint_id,
            message_id=data.message_id,
            event=data.event,
            job_id=data.job_id,
            attempt=ctx.claim.attempt,
            started_at=started,
            answer=answer,
        )
        if answer.ok:
            deliveries.note_success(session, data.endpoint_id)


def _failed(ctx: JobContext, data: WebhookDeliverInput, answer: Answer) -> NoReturn:
    settings = ctx.settings
    what = (
        f"The receiver answered {answer.status_code}"
        if answer.status_code is not None
        else f"The receiver was not reached: {answer.error}"
    )
    if answer.status_code == 410:
        with ctx.db.transaction() as session:
            deliveries.disable(session, data.endpoint_id, GONE)
        raise PermanentJobError(f"{what} (Gone): the endpoint is disabled", type="endpoint_gone")
    publishes = PendingPublishes()
    with ctx.db.transaction() as session:
        disabled = deliveries.note_failure(
            session, data.endpoint_id, settings.webhook_disable_after_seconds
        )
        if disabled:
            _tell_managers(ctx, session, data, publishes)
    publishes.flush(ctx.publisher, settings.tenant_concurrency)
    if disabled:
        raise PermanentJobError(
            f"{what}; every attempt has failed for too long: the endpoint is disabled",
            type="endpoint_disabled",
        )
    attempt = ctx.claim.attempt
    if attempt >= ctx.claim.max_attempts:
        raise PermanentJobError(f"{what}; no attempts are left", type="delivery_failed")
    delay = settings.webhook_retry_delays[attempt - 1]
    raise TransientJobError(
        what,
        retry_after=delay * random.uniform(1 - JITTER, 1 + JITTER),  # noqa: S311 - jitter
    )


def _tell_managers(
    ctx: JobContext, session: Session, data: WebhookDeliverInput, publishes: PendingPublishes
) -> None:
    for email, url in deliveries.managers(session, data.endpoint_id):
        queue_email(
            session,
            publishes,
            ctx.settings,
            to=email,
            subject="A Conveyor webhook endpoint was disabled",
            text=(
                f"Every delivery to the webhook endpoint {data.endpoint_id} has failed for "
                f"{ctx.settings.webhook_disable_after_seconds / 86400:g} days, so it no "
                "longer receives events.\n\n"
                f"Its URL: {url}\n\n"
                "Once it answers again, an owner or admin can enable it with PATCH "
                f'/api/v1/webhooks/{data.endpoint_id} {{"enabled": true}}.\n'
            ),
        )
