"""`enqueued_at` is recorded after a publish: by the API in background batches, and
written out when it shuts down. A job left without it is re-sent by the reconciler.
Each publish's task-sent event reaches the monitor, in batches too."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from kombu import Connection
from pydantic import SecretStr
from sqlalchemy import func, select, update

from api.app import create_app
from core.db import Database
from core.jobs.celery_app import create_celery
from core.jobs.contracts import ECHO, KINDS
from core.jobs.messages import MESSAGE_COLUMNS, JobMessage
from core.jobs.publishing import EnqueuedRecorder, JobPublisher, PendingPublishes
from core.jobs.sent_events import SentEvents
from core.jobs.submit import submit
from core.models import Job
from core.settings import get_settings
from tests.support.factories import User
from tests.support.reconciler import reconciler_held_off
from tests.support.stack import Stack


def queued_jobs(db: Database, count: int) -> list[uuid.UUID]:
    """Jobs inserted but never published, held back from the reconciler: it would send
    them (and a worker run them) once the tests' one-second grace has passed."""
    with db.transaction() as session:
        job_ids = [
            submit(
                session,
                PendingPublishes(),  # published (or held back) by the test itself
                tenant_id=None,
                user_id=None,
                kind_name=ECHO,
                raw_input={"n": n},
                settings=get_settings(),
            ).job.id
            for n in range(count)
        ]
        session.execute(
            update(Job)
            .where(Job.id.in_(job_ids))
            .values(updated_at=func.now() + timedelta(hours=1))
        )
        return job_ids


def enqueued_at(db: Database, job_ids: list[uuid.UUID]) -> dict[uuid.UUID, datetime | None]:
    with db.transaction() as session:
        rows = session.execute(select(Job.id, Job.enqueued_at).where(Job.id.in_(job_ids)))
        return {row.id: row.enqueued_at for row in rows}


def wait_until_recorded(
    db: Database, job_ids: list[uuid.UUID], timeout: float = 5.0
) -> dict[uuid.UUID, datetime | None]:
    deadline = time.monotonic() + timeout
    while True:
        stamps = enqueued_at(db, job_ids)
        if all(stamps.values()) or time.monotonic() > deadline:
            return stamps
        time.sleep(0.02)


def test_jobs_recorded_together_are_written_in_one_statement(db: Database) -> None:
    recorder = EnqueuedRecorder(db, interval=0.2)
    first, second, third = queued_jobs(db, 3)
    try:
        recorder.record([(first, 0)])
        recorder.record([(second, 0), (third, 0)])

        stamps = wait_until_recorded(db, [first, second, third])
    finally:
        recorder.close()

    assert all(stamps.values())
    # now() is the statement's transaction start: one value means one UPDATE.
    assert len(set(stamps.values())) == 1


def test_close_writes_what_is_pending_and_later_records_at_once(db: Database) -> None:
    recorder = EnqueuedRecorder(db, interval=30.0)
    pending, late = queued_jobs(db, 2)
    try:
        recorder.record([(pending, 0)])
        assert enqueued_at(db, [pending])[pending] is None  # still waiting out the interval
    finally:
        recorder.close()
    assert enqueued_at(db, [pending])[pending] is not None

    recorder.record([(late, 0)])
    assert enqueued_at(db, [late])[late] is not None


def test_a_late_record_skips_a_job_claimed_since(db: Database) -> None:
    """Claimed, failed and requeued before the batch landed: the job now waits for its
    retry's message, and must still look unpublished if that publish failed."""
    (job_id,) = queued_jobs(db, 1)
    with db.transaction() as session:
        session.execute(update(Job).where(Job.id == job_id).values(attempts=1))
    recorder = EnqueuedRecorder(db)
    recorder.record([(job_id, 0)])
    recorder.close()

    assert enqueued_at(db, [job_id])[job_id] is None


def test_a_record_of_a_retrys_message_marks_it(db: Database) -> None:
    """A retry dispatched from an API request (its tenant's slot freed by a submit or a
    cancel) is recorded as sent like a new job, or the reconciler would send it twice."""
    (job_id,) = queued_jobs(db, 1)
    with db.transaction() as session:
        session.execute(update(Job).where(Job.id == job_id).values(attempts=1))
    recorder = EnqueuedRecorder(db)
    recorder.record([(job_id, 1)])
    recorder.close()

    assert enqueued_at(db, [job_id])[job_id] is not None


def test_the_api_records_a_job_it_published(stack: Stack, user: User, db: Database) -> None:
    # A broker no worker reads, so the job stays queued whatever else is running.
    settings = stack.settings.model_copy(update={"broker_url": SecretStr("memory://")})
    # The reconciler would record the job too, once the tests' one-second grace is over.
    with reconciler_held_off(db), TestClient(create_app(settings)) as client:
        response = client.post(
            "/api/v1/jobs", headers=user.headers, json={"kind": "diagnostics.echo", "input": {}}
        )
        job_id = uuid.UUID(response.json()["id"])

        assert wait_until_recorded(db, [job_id], timeout=30)[job_id] is not None


def test_the_api_writes_pending_records_when_it_shuts_down(
    stack: Stack, user: User, db: Database
) -> None:
    settings = stack.settings.model_copy(update={"broker_url": SecretStr("memory://")})
    app = create_app(settings)
    app.state.conveyor.publisher.recorder = EnqueuedRecorder(app.state.conveyor.db, interval=30.0)
    with reconciler_held_off(db), TestClient(app) as client:
        response = client.post(
            "/api/v1/jobs", headers=user.headers, json={"kind": "diagnostics.echo", "input": {}}
        )
        job_id = uuid.UUID(response.json()["id"])
        assert enqueued_at(db, [job_id])[job_id] is None  # still waiting out the interval

    assert enqueued_at(db, [job_id])[job_id] is not None


def drain(connection: Connection, seconds: float) -> None:
    try:
        connection.drain_events(timeout=seconds)
    except TimeoutError:
        pass


def test_the_task_sent_events_of_a_batch_reach_the_monitor_as_one_message(
    stack: Stack, db: Database
) -> None:
    """What Flower reads: each published job's task-sent event, with what the job is,
    the events of one batch in one message, not one message beside each job's own.
    Once its publisher has closed, a job's event goes with its message."""
    celery = create_celery(stack.settings, "tests-sent-events")
    job_ids = queued_jobs(db, 4)
    with db.transaction() as session:
        rows = session.execute(select(*MESSAGE_COLUMNS).where(Job.id.in_(job_ids)))
        messages = sorted(
            (JobMessage.of_row(row) for row in rows), key=lambda m: job_ids.index(m.job_id)
        )
    batched, late = messages[:3], messages[3]
    sent_ids = {str(job_id) for job_id in job_ids}
    received: list[Any] = []
    with celery.connection_for_read() as connection:
        # The monitor's own queue on the events exchange, as Flower binds it.
        queue = celery.events.Receiver(connection).queue
        with connection.Consumer(
            [queue], callbacks=[lambda body, _: received.append(body)], accept=["json"], no_ack=True
        ):
            drain(connection, 0.5)  # listening before anything is published
            publisher = JobPublisher(celery, db, stack.settings)
            # One batch, however slowly this machine publishes the three.
            publisher.events = SentEvents(celery, interval=30.0)
            try:
                assert publisher.publish(batched) == job_ids[:3]
            finally:
                publisher.close()  # sends the batch it holds
            assert publisher.publish([late]) == job_ids[3:]

            def ours() -> list[Any]:
                """The messages that carry the jobs' task-sent events (a worker may run
                them meanwhile, and send events of its own)."""
                return [
                    body
                    for body in received
                    if any(
                        event.get("type") == "task-sent" and event.get("uuid") in sent_ids
                        for event in _events(body)
                    )
                ]

            deadline = time.monotonic() + 15
            while len(ours()) < 2 and time.monotonic() < deadline:
                drain(connection, 0.5)
            drain(connection, 0.5)  # and nothing more of theirs comes after

    batch, alone = ours()
    assert [event["uuid"] for event in batch] == [str(job_id) for job_id in job_ids[:3]]
    assert alone["uuid"] == str(job_ids[3])  # one event, not a batch
    kind = KINDS[ECHO]
    for event, message in zip([*batch, alone], messages, strict=True):
        assert event["type"] == "task-sent"
        assert event["name"] == kind.task_name
        assert event["queue"] == kind.queue.value
        assert event["kwargs"] == message.kwargsrepr()


def _events(body: Any) -> list[dict[str, Any]]:
    return body if isinstance(body, list) else [body]
