"""The worker's job protocol against the real database: retries, failures, duplicates.

Handlers here are small functions that raise on purpose; the protocol around them is
the production code. A retry waits in PostgreSQL until its `run_after` and no worker
runs here, so each step is observed deterministically.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import func, update

from core.db import Database
from core.jobs.contracts import ECHO
from core.models import Job
from tests.support.factories import User, create_job
from tests.support.rows import end_retry_wait, job_state
from tests.support.stack import Stack
from worker.context import JobContext
from worker.errors import PermanentJobError, TransientJobError
from worker.outcomes import NOT_OURS, Outcome
from worker.protocol import run_job

# The worker node the jobs here run on, as a `celery worker` names itself.
NODE = "tests@localhost"


@pytest.fixture
def celery() -> Celery:
    """For the reconciler: it publishes to kombu's in-memory transport, which no worker
    consumes."""
    return Celery("tests", broker="memory://", set_as_current=False)


def new_job(stack: Stack, user: User, max_attempts: int = 3) -> uuid.UUID:
    """A queued echo job, recorded as published, so a running reconciler leaves it to
    this test."""
    return create_job(
        stack, user.personal_tenant_id, user, ECHO, {"v": 1}, max_attempts=max_attempts
    )


def transient(_: JobContext, __: Any) -> dict[str, Any]:
    raise TransientJobError("upstream answered 503")


def permanent(_: JobContext, __: Any) -> dict[str, Any]:
    raise PermanentJobError("the file is not a PDF", type="unsupported_file")


def crashes(_: JobContext, __: Any) -> dict[str, Any]:
    raise KeyError("api_key=sk-secret")


def works(_: JobContext, data: Any) -> dict[str, Any]:
    return {"ok": True}


def test_transient_error_requeues_then_succeeds(db: Database, stack: Stack, user: User) -> None:
    job_id = new_job(stack, user)

    ended = run_job(transient, str(job_id), NODE)

    assert ended.outcome is Outcome.RETRYING  # the task ends RETRY
    job, events = job_state(db, job_id)
    assert (job.status, job.attempts, job.lease_until) == ("queued", 1, None)
    retry = events[-1].data
    assert retry["status"] == "queued"
    assert retry["reason"] == "retry"
    assert retry["error"] == {
        "type": "transient_error",
        "message": "upstream answered 503",
        "retryable": True,
    }
    assert 0 < retry["retry_in_seconds"] <= stack.settings.retry_backoff_max_seconds
    # Held in PostgreSQL, unpublished, until the reconciler sends it when it is due.
    assert job.enqueued_at is None
    assert job.run_after is not None
    assert job.run_after > job.updated_at
    # Its queue wait counts from when it is due again.
    assert job.queued_at == job.run_after
    # A copy of a message, early: turned away, and its task counts as nothing.
    assert run_job(works, str(job_id), NODE) == NOT_OURS
    assert job_state(db, job_id)[0].status == "queued"

    end_retry_wait(db, job_id)
    assert run_job(works, str(job_id), NODE).outcome is Outcome.SUCCEEDED

    job, _ = job_state(db, job_id)
    assert (job.status, job.attempts, job.result) == ("succeeded", 2, {"ok": True})


def test_transient_error_on_the_last_attempt_fails(db: Database, stack: Stack, user: User) -> None:
    job_id = new_job(stack, user, max_attempts=2)

    run_job(transient, str(job_id), NODE)
    end_retry_wait(db, job_id)
    run_job(transient, str(job_id), NODE)

    job, _ = job_state(db, job_id)
    assert (job.status, job.attempts) == ("failed", 2)
    assert job.error is not None
    assert job.error["type"] == "transient_error"
    # A late duplicate changes nothing, and its task ends failed as the job did.
    late = run_job(works, str(job_id), NODE)
    assert late.outcome is Outcome.FAILED
    assert late.error is not None
    assert late.error.type == "transient_error"
    assert job_state(db, job_id)[0].status == "failed"


def test_permanent_error_fails_at_once(db: Database, stack: Stack, user: User) -> None:
    job_id = new_job(stack, user)

    run_job(permanent, str(job_id), NODE)

    job, events = job_state(db, job_id)
    assert (job.status, job.attempts) == ("failed", 1)
    assert job.error == {
        "type": "unsupported_file",
        "message": "the file is not a PDF",
        "retryable": False,
    }
    assert events[-1].data["status"] == "failed"


def test_unexpected_exception_fails_without_leaking(db: Database, stack: Stack, user: User) -> None:
    job_id = new_job(stack, user)

    run_job(crashes, str(job_id), NODE)

    job, _ = job_state(db, job_id)
    assert job.status == "failed"
    assert job.error == {
        "type": "internal_error",
        "message": "Unexpected KeyError",
        "retryable": False,
    }


def test_duplicate_delivery_while_running_does_nothing(
    db: Database, stack: Stack, user: User
) -> None:
    job_id = new_job(stack, user)
    calls: list[str] = []

    def duplicate(_: JobContext, __: Any) -> dict[str, Any]:
        calls.append("duplicate ran")
        return {}

    def reenters(_: JobContext, __: Any) -> dict[str, Any]:
        # The same message delivered again while this attempt holds the lease.
        assert run_job(duplicate, str(job_id), NODE) == NOT_OURS
        return {"once": True}

    run_job(reenters, str(job_id), NODE)

    job, events = job_state(db, job_id)
    assert calls == []
    assert (job.status, job.attempts, job.result) == ("succeeded", 1, {"once": True})
    assert [e.data.get("status") for e in events] == ["queued", "running", "succeeded"]


def test_cancel_requested_then_transient_error_ends_cancelled(
    db: Database, stack: Stack, user: User, app_client: Any
) -> None:
    job_id = new_job(stack, user)

    def cancelled_then_fails(_: JobContext, __: Any) -> dict[str, Any]:
        app_client.post(f"/api/v1/jobs/{job_id}/cancel", headers=user.headers)
        raise TransientJobError("upstream answered 503")

    ended = run_job(cancelled_then_fails, str(job_id), NODE)

    assert ended.outcome is Outcome.CANCELLED  # the task ends REVOKED
    job, events = job_state(db, job_id)
    assert (job.status, job.attempts) == ("cancelled", 1)
    assert events[-1].data["status"] == "cancelled"


def test_a_write_from_a_replaced_attempt_is_refused(db: Database, stack: Stack, user: User) -> None:
    from core.jobs import lifecycle

    job_id = new_job(stack, user)
    with db.transaction() as session:
        first = lifecycle.claim(session, job_id, lease_seconds=60, owner="tests/1/a")
        session.execute(update(Job).where(Job.id == job_id).values(lease_until=func.now()))
    with db.transaction() as session:
        second = lifecycle.claim(session, job_id, lease_seconds=60, owner="tests/1/a")
    assert first is not None
    assert second is not None
    assert (first.attempt, second.attempt) == (1, 2)

    with db.transaction() as session:
        assert not lifecycle.succeed(session, job_id, first.attempt, {"from": "zombie"})
        assert lifecycle.succeed(session, job_id, second.attempt, {"from": "owner"})
    assert job_state(db, job_id)[0].result == {"from": "owner"}


def test_reconciler_dead_letters_a_lost_job_out_of_attempts(
    db: Database, stack: Stack, user: User, app_client: Any, celery: Celery
) -> None:
    from core.jobs import lifecycle, totals
    from core.jobs.totals import Counted
    from worker.maintenance.reconciler import reconcile

    def takeovers() -> int:
        with db.transaction() as session:
            return totals.read_totals(session).counted.get(Counted.LEASE_TAKEOVERS.value, 0)

    before = takeovers()
    job_id = new_job(stack, user, max_attempts=1)
    with db.transaction() as session:
        assert lifecycle.claim(session, job_id, lease_seconds=60, owner="tests/1/a") is not None
        # The worker holding it died: nobody extends the lease.
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(lease_until=func.now() - timedelta(seconds=1))
        )

    reconcile(celery)

    job = app_client.get(f"/api/v1/jobs/{job_id}", headers=user.headers).json()
    assert job["status"] == "failed"
    assert job["error"]["type"] == "worker_lost"
    # Counted once, by whichever reconciler took it (beat's may have run first).
    assert takeovers() == before + 1
    with db.transaction() as session:
        assert totals.read_totals(session).runs["reconciler"][1] is True
    assert job["attempts"] == 1


def test_a_handler_blocked_past_its_lease_keeps_the_job(
    db: Database, stack: Stack, user: User, celery: Celery
) -> None:
    import time

    from worker.maintenance.reconciler import reconcile

    job_id = new_job(stack, user)
    lease = stack.settings.job_lease_seconds

    def blocks(_: JobContext, __: Any) -> dict[str, Any]:
        # One long call with no checkpoint: only the background heartbeat keeps the lease.
        time.sleep(lease * 2)
        reconcile(celery)
        return {"kept": True}

    run_job(blocks, str(job_id), NODE)

    job, _ = job_state(db, job_id)
    assert (job.status, job.attempts, job.result) == ("succeeded", 1, {"kept": True})


def test_a_job_cancelled_while_queued_ends_its_task_cancelled(
    db: Database, stack: Stack, user: User, app_client: Any
) -> None:
    job_id = new_job(stack, user)
    cancelled = app_client.post(f"/api/v1/jobs/{job_id}/cancel", headers=user.headers)
    assert cancelled.json()["status"] == "cancelled"

    # Its message, delivered after: the claim turns it away, and Flower shows REVOKED.
    assert run_job(works, str(job_id), NODE).outcome is Outcome.CANCELLED
    assert job_state(db, job_id)[0].attempts == 0
