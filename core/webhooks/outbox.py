"""The outbox: a job's end queues its webhook deliveries in the statement that ends it.

Each delivery is a `webhooks.deliver` job inserted by the same statement as the job's
terminal transition (`core.jobs.lifecycle`), so both are committed or neither: no
crash between a job ending and its webhook being recorded can lose the webhook. The
deliveries wait in their tenant's line in the `webhooks` queue and are dispatched
after the commit, by whoever ended the job, or by the reconciler's sweep.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import CTE, Select, Text, and_, any_, cast, func, insert, literal, or_, select
from sqlalchemy.dialects.postgresql import JSONB

from core.jobs import first_event
from core.jobs.contracts import WEBHOOK_DELIVER, WEBHOOK_MAX_ATTEMPTS, Queue
from core.models import Job, WebhookEndpoint
from core.webhooks.events import Event


def with_deliveries(statement: Select[Any], ended: CTE, event: Event) -> Select[Any]:
    """`statement` (a job's terminal transition, whose RETURNING rows are `ended`)
    also inserting one delivery job, with its first event, per endpoint that wants
    `event` about those jobs, and answering how many with a `webhooks` column. A
    delivery's own end sends nothing, nor does a system job's."""
    endpoint = WebhookEndpoint.__table__
    wanted = select(
        func.gen_random_uuid(),
        endpoint.c.tenant_id,
        literal(WEBHOOK_DELIVER),
        literal(Queue.WEBHOOKS.value),
        func.jsonb_build_object(
            "endpoint_id",
            endpoint.c.id,
            "event",
            literal(event.value),
            "message_id",
            "msg_" + func.replace(cast(ended.c.id, Text), "-", ""),
            "job_id",
            ended.c.id,
            "occurred_at",
            func.now(),
        ).cast(JSONB),
        literal(WEBHOOK_MAX_ATTEMPTS),
        literal(1),
        func.now(),
    ).where(
        and_(
            endpoint.c.tenant_id == ended.c.tenant_id,
            endpoint.c.disabled_at.is_(None),
            literal(event.value) == any_(endpoint.c.events),
            or_(endpoint.c.kinds.is_(None), ended.c.kind == any_(endpoint.c.kinds)),
            ended.c.kind != WEBHOOK_DELIVER,
        )
    )
    queued = (
        insert(Job)
        .from_select(
            ["id", "tenant_id", "kind", "queue", "input", "max_attempts", "event_seq", "queued_at"],
            wanted,
        )
        .returning(Job.id)
        .cte("webhooks")
    )
    logged = first_event.logged(queued, "webhooks_logged")
    count = select(func.count()).select_from(queued).scalar_subquery().label("webhooks")
    return statement.add_cte(logged).add_columns(count)
