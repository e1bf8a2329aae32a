"""`enqueued_at`: the statement that dispatches a job records it as sent, since the
publish follows the commit at once; a publish that fails unmarks it for the reconciler,
and the reconciler's own re-sends are recorded after their publish."""

from __future__ import annotations

import uuid
from datetime import datetime

from celery import Celery
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select, update

from api.app import create_app
from core.db import Database
from core.jobs.celery_app import create_celery
from core.jobs.contracts import ECHO
from core.jobs.messages import JobMessage
from core.jobs.publishing import PendingPublishes, mark_unsent, publish_committed
from core.jobs.submit import submit
from core.models import Job
from core.settings import get_settings
from tests.support.factories import User
from tests.support.reconciler import reconciler_held_off
from tests.support.stack import Stack

# Nothing listens there: a publish fails at once, as with a broker that is down.
DEAD_BROKER = "redis://127.0.0.1:1/0"


def celery_on(broker_url: str) -> Celery:
    return create_celery(
        get_settings().model_copy(update={"broker_url": SecretStr(broker_url)}), "tests"
    )


def dispatched_jobs(db: Database, count: int) -> list[JobMessage]:
    """Due system jobs (no cap: dispatched as they are inserted), not yet published."""
    publishes = PendingPublishes()
    with db.transaction() as session:
        for n in range(count):
            submit(
                session,
                publishes,
                tenant_id=None,
                user_id=None,
                kind_name=ECHO,
                raw_input={"n": n},
                settings=get_settings(),
            )
    return publishes.committed(db, get_settings().tenant_concurrency)


def enqueued_at(db: Database, job_ids: list[uuid.UUID]) -> dict[uuid.UUID, datetime | None]:
    with db.transaction() as session:
        rows = session.execute(select(Job.id, Job.enqueued_at).where(Job.id.in_(job_ids)))
        return {row.id: row.enqueued_at for row in rows}


def ids(messages: list[JobMessage]) -> list[uuid.UUID]:
    return [message.job_id for message in messages]


def test_a_submit_records_its_job_sent_as_it_dispatches_it(
    stack: Stack, user: User, db: Database
) -> None:
    # A broker no worker reads, so the job stays queued whatever else is running.
    settings = stack.settings.model_copy(update={"broker_url": SecretStr("memory://")})
    with reconciler_held_off(db), TestClient(create_app(settings)) as client:
        response = client.post(
            "/api/v1/jobs", headers=user.headers, json={"kind": "diagnostics.echo", "input": {}}
        )
        job_id = uuid.UUID(response.json()["id"])

        # At once, by the dispatch: no write after the publish.
        assert enqueued_at(db, [job_id])[job_id] is not None


def test_a_failed_publish_unmarks_every_job_it_did_not_send(db: Database) -> None:
    with reconciler_held_off(db):
        messages = dispatched_jobs(db, 3)
        assert all(enqueued_at(db, ids(messages)).values())

        sent = publish_committed(celery_on(DEAD_BROKER), db, messages, recorded=True)

        assert sent == []
        # The reconciler sends them once UNPUBLISHED_GRACE_SECONDS have passed.
        assert set(enqueued_at(db, ids(messages)).values()) == {None}


def test_a_publish_that_went_through_leaves_its_jobs_marked(db: Database) -> None:
    with reconciler_held_off(db):
        messages = dispatched_jobs(db, 2)
        before = enqueued_at(db, ids(messages))

        sent = publish_committed(celery_on("memory://"), db, messages, recorded=True)

        assert sent == ids(messages)
        assert enqueued_at(db, ids(messages)) == before


def test_an_unmark_skips_a_job_claimed_since(db: Database) -> None:
    """The broker may have taken a message whose publish then failed: a job an attempt
    has claimed since keeps its mark, and its retry waits for a message of its own."""
    with reconciler_held_off(db):
        (message,) = dispatched_jobs(db, 1)
        with db.transaction() as session:
            session.execute(update(Job).where(Job.id == message.job_id).values(attempts=1))

        with db.autocommit() as connection:
            mark_unsent(connection, [(message.job_id, message.attempts)])

        assert enqueued_at(db, [message.job_id])[message.job_id] is not None


def test_a_resend_is_recorded_after_its_publish(db: Database) -> None:
    """The reconciler's re-sends (a failed publish, a lost message) were not marked by
    a dispatch: each one sent is marked then, and one not sent stays unmarked."""
    with reconciler_held_off(db):
        messages = dispatched_jobs(db, 2)
        with db.autocommit() as connection:
            mark_unsent(connection, [(m.job_id, m.attempts) for m in messages])

        assert publish_committed(celery_on(DEAD_BROKER), db, messages) == []
        assert set(enqueued_at(db, ids(messages)).values()) == {None}

        assert publish_committed(celery_on("memory://"), db, messages) == ids(messages)
        assert all(enqueued_at(db, ids(messages)).values())
