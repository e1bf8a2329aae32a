"""The counts behind the job metrics: read from the rows until they are rolled up, then
from the totals, and never going down when the rows are deleted.

Jobs here are rows of a kind of their own (no worker runs it), with the times written
directly, so every figure is known exactly whatever else the session runs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from functools import partial

from sqlalchemy import delete, select

from core.jobs import totals
from core.jobs.totals import BUCKETS, Counted
from core.models import Job, JobTotals, MaintenanceRun
from tests.support.rows import add_finished_job
from tests.support.stack import Stack


def read(stack: Stack) -> totals.Totals:
    with stack.db.transaction() as session:
        return totals.read_totals(session)


def test_finished_jobs_are_counted_before_and_after_the_roll_up_and_their_deletion(
    stack: Stack,
) -> None:
    kind = f"tests.totals-{uuid.uuid4().hex[:8]}"
    finished = partial(add_finished_job, stack.db)
    old = timedelta(minutes=10)
    ids = [
        finished(kind, "succeeded", waited=0.02, ran=0.3, finished_ago=old),
        add_finished_job(
            stack.db, kind, "succeeded", waited=4.0, ran=45.0, finished_ago=old, attempts=3
        ),
        add_finished_job(
            stack.db, kind, "failed", waited=0.5, ran=2.0, finished_ago=old, attempts=2
        ),
        # Cancelled while queued: counted, with no wait or run time.
        finished(kind, "cancelled", waited=None, ran=None, finished_ago=old),
        # Just finished: inside the roll-up's margin, so still read from its row.
        add_finished_job(
            stack.db, kind, "succeeded", waited=0.1, ran=0.1, finished_ago=timedelta()
        ),
    ]

    def check(found: totals.Totals) -> None:
        succeeded = found.finished[(kind, "succeeded")]
        assert succeeded.jobs == 3
        assert succeeded.retries == 2
        assert succeeded.run.count == 3
        assert succeeded.run.sum == 45.4
        # At most 0.25 s: the 0.1 s run; at most 0.5 s: the 0.3 s one too; 45 s: all.
        assert succeeded.run.buckets[BUCKETS.index(0.25)] == 1
        assert succeeded.run.buckets[BUCKETS.index(0.5)] == 2
        assert succeeded.run.buckets[BUCKETS.index(30.0)] == 2
        assert succeeded.run.buckets[BUCKETS.index(60.0)] == 3
        assert succeeded.wait.buckets[BUCKETS.index(0.05)] == 1
        assert round(succeeded.wait.sum, 6) == 4.12
        failed = found.finished[(kind, "failed")]
        assert (failed.jobs, failed.retries, failed.run.count) == (1, 1, 1)
        cancelled = found.finished[(kind, "cancelled")]
        assert (cancelled.jobs, cancelled.wait.count, cancelled.run.count) == (1, 0, 0)

    check(read(stack))

    with stack.db.transaction() as session:
        totals.roll_up(session)
    with stack.db.transaction() as session:
        rolled = session.scalars(select(JobTotals).where(JobTotals.kind == kind)).all()
    # The old jobs are in the totals now (this roll-up's or beat's), the new one is not.
    assert sum(row.jobs for row in rolled) == 4
    check(read(stack))

    with stack.db.transaction() as session:
        session.execute(delete(Job).where(Job.id.in_(ids[:4])))
    check(read(stack))


def test_counters_and_maintenance_runs_add_up(stack: Stack) -> None:
    before = read(stack)
    with stack.db.transaction() as session:
        totals.count(session, Counted.REPUBLISHED, 3)
        totals.count(session, Counted.REPUBLISHED, 0)
        totals.count(session, Counted.LEASE_TAKEOVERS)
        totals.record_run(session, "tests-task", ok=False)
    after = read(stack)

    republished = Counted.REPUBLISHED.value
    takeovers = Counted.LEASE_TAKEOVERS.value
    assert after.counted[republished] >= before.counted.get(republished, 0) + 3
    assert after.counted[takeovers] >= before.counted.get(takeovers, 0) + 1
    at, ok = after.runs["tests-task"]
    assert ok is False
    assert abs((datetime.now(UTC) - at).total_seconds()) < 60
    with stack.db.transaction() as session:
        session.execute(delete(MaintenanceRun).where(MaintenanceRun.task == "tests-task"))
