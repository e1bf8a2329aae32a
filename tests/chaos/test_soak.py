"""A soak: 2,000 jobs through two workers while, again and again, a pool process or a
whole worker is killed. Every job completes exactly once as the user sees it, and every
second run of a handler is on the job's record (a requeue and its reason)."""

from __future__ import annotations

import os
import random
import signal
import time
import uuid

from sqlalchemy import func, select

from core.models import JobEvent
from tests.chaos.conftest import Chaos
from tests.support.chaos_report import Scenario
from tests.support.factories import create_user
from tests.support.worker import WorkerProcess

JOBS = 2_000
# One job in ten sleeps, so that kills land on jobs mid-run.
SLEEPER_EVERY = 10
KILLS = 8
KILL_INTERVAL_SECONDS = 3.0


def requeues_by_job(chaos: Chaos, ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    with chaos.stack.db.transaction() as session:
        rows = session.execute(
            select(JobEvent.job_id, func.count())
            .where(JobEvent.job_id.in_(ids), JobEvent.data.has_key("reason"))
            .group_by(JobEvent.job_id)
        )
        return {job_id: count for job_id, count in rows}


def test_two_thousand_jobs_through_repeated_worker_kills(chaos: Chaos, scenario: Scenario) -> None:
    user = create_user(chaos.stack)
    ids = []
    for n in range(JOBS):
        if n % SLEEPER_EVERY == 0:
            ids += chaos.submit(user, "diagnostics.sleep", {"seconds": 0.5})
        else:
            ids += chaos.submit(user, "diagnostics.echo", {"n": n})
    # Started once everything waits, so that the kills land while jobs run.
    workers: list[WorkerProcess] = [
        chaos.start_worker("w1", concurrency=2, beat=True),
        chaos.start_worker("w2", concurrency=2),
    ]

    chooser = random.Random(13)  # noqa: S311 - which worker to kill, reproducibly
    for kill in range(KILLS):
        time.sleep(KILL_INTERVAL_SECONDS)
        slot = chooser.randrange(len(workers))
        if kill % 2 == 0:
            for child in workers[slot].pool_children():
                os.kill(child.pid, signal.SIGKILL)
        else:
            workers[slot].kill()
            workers[slot] = chaos.start_worker(f"w{slot + 1}", concurrency=2)
    last_kill = time.monotonic()

    done = chaos.wait_until_finished(ids, timeout=240)
    scenario.recovery_s = time.monotonic() - last_kill
    chaos.tally(scenario, ids)
    assert len({job.id for job in done}) == JOBS
    assert scenario.succeeded == JOBS, [
        (str(job.id), job.status, job.attempts, job.error)
        for job in done
        if job.status != "succeeded"
    ]
    assert scenario.duplicated == 0
    # Every handler that ran again did so for a reason on the job's record.
    requeues = requeues_by_job(chaos, ids)
    unexplained = [job.id for job in done if job.attempts - 1 != requeues.get(job.id, 0)]
    assert unexplained == []
