"""Taking a job back from a pool process that died under it, and a claim found again
after its answer was lost: the compare-and-sets against the real database."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, update

from core.db import Database
from core.jobs import lifecycle
from core.jobs.contracts import ECHO
from core.models import Job
from tests.support.factories import User, create_job
from tests.support.rows import job_state
from tests.support.stack import Stack

DEAD = "w1@host/4242/"


def claimed(stack: Stack, user: User, max_attempts: int, owner: str = DEAD + "ab12") -> uuid.UUID:
    job_id = create_job(
        stack, user.personal_tenant_id, user, ECHO, {"v": 1}, max_attempts=max_attempts
    )
    with stack.db.autocommit() as connection:
        assert lifecycle.claim(connection, job_id, 60, owner) is not None
    return job_id


def test_a_dead_processs_job_is_requeued_with_its_reason(
    db: Database, stack: Stack, user: User
) -> None:
    job_id = claimed(stack, user, max_attempts=3)

    with db.transaction() as session:
        assert lifecycle.take_back_from_dead(session, job_id, DEAD)

    job, events = job_state(db, job_id)
    assert (job.status, job.attempts, job.lease_owner, job.lease_until) == ("queued", 1, None, None)
    # Celery puts the message back: it counts as sent.
    assert job.enqueued_at is not None
    assert events[-1].data["reason"] == "worker_lost"


def test_on_its_last_attempt_it_fails_instead_of_waiting_for_ever(
    db: Database, stack: Stack, user: User
) -> None:
    job_id = claimed(stack, user, max_attempts=1)

    with db.transaction() as session:
        assert lifecycle.take_back_from_dead(session, job_id, DEAD)

    job, _ = job_state(db, job_id)
    assert job.status == "failed"
    assert job.error is not None
    assert job.error["type"] == "worker_lost"


def test_another_processs_job_is_left_alone(db: Database, stack: Stack, user: User) -> None:
    job_id = claimed(stack, user, max_attempts=3, owner="w1@host/4243/cd34")

    with db.transaction() as session:
        assert not lifecycle.take_back_from_dead(session, job_id, DEAD)

    assert job_state(db, job_id)[0].status == "running"


def test_a_claim_found_again_is_the_same_attempt_with_a_fresh_lease(
    db: Database, stack: Stack, user: User
) -> None:
    owner = DEAD + "ab12"
    job_id = claimed(stack, user, max_attempts=3, owner=owner)
    with db.transaction() as session:
        session.execute(update(Job).where(Job.id == job_id).values(lease_until=func.now()))

    with db.autocommit() as connection:
        again = lifecycle.held_claim(connection, job_id, 60, owner)
        assert lifecycle.held_claim(connection, job_id, 60, DEAD + "other") is None

    assert again is not None
    assert again.attempt == 1
    with db.transaction() as session:
        extended = session.scalar(
            select(Job.lease_until > func.now() + func.make_interval(0, 0, 0, 0, 0, 0, 50)).where(
                Job.id == job_id
            )
        )
    assert extended
