"""Workers die: a pool process under a job, a whole worker beside a live one, every
worker for a minute. Each job finishes, none is lost, and the way each was taken back is
on its record (an event with the reason)."""

from __future__ import annotations

import os
import signal
import time
import uuid

from sqlalchemy import select

from core.models import Job, JobEvent
from tests.chaos.conftest import Chaos
from tests.support.chaos_report import Scenario
from tests.support.factories import create_user

# How long every worker stays dead in the last scenario.
ALL_DEAD_SECONDS = 60


def requeue_reasons(chaos: Chaos, job_id: uuid.UUID) -> list[str]:
    with chaos.stack.db.transaction() as session:
        events = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id))
        return [
            e.data["reason"]
            for e in events
            if e.data.get("status") == "queued" and "reason" in e.data
        ]


def holder(chaos: Chaos, job_id: uuid.UUID) -> str:
    with chaos.stack.db.transaction() as session:
        owner = session.scalar(select(Job.lease_owner).where(Job.id == job_id))
    assert owner is not None
    return owner


def test_a_pool_process_killed_mid_job_is_requeued_at_once(
    chaos: Chaos, scenario: Scenario
) -> None:
    worker = chaos.start_worker("w1", concurrency=2, beat=True)
    user = create_user(chaos.stack)
    [job_id] = chaos.submit(user, "diagnostics.sleep", {"seconds": 2})
    chaos.wait_for_status([job_id], "running", 1, timeout=30)
    time.sleep(0.5)

    # The pool process that holds the job: `<node>/<pid>/<delivery>`.
    pid = int(holder(chaos, job_id).split("/")[1])
    assert pid in [child.pid for child in worker.pool_children()]
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()

    [done] = chaos.wait_until_finished([job_id], timeout=60)
    # Less the second attempt's own two seconds: the time it took to start it.
    scenario.recovery_s = time.monotonic() - killed - 2
    chaos.tally(scenario, [job_id])
    assert (done.status, done.attempts) == ("succeeded", 2)
    # Requeued by the worker's main process, not by the lease running out.
    assert requeue_reasons(chaos, job_id) == ["worker_lost"]
    assert worker.alive()


def test_a_whole_worker_killed_mid_job_is_recovered_by_its_lease(
    chaos: Chaos, scenario: Scenario
) -> None:
    workers = {
        "w1": chaos.start_worker("w1", concurrency=1, beat=True),
        "w2": chaos.start_worker("w2", concurrency=1),
    }
    user = create_user(chaos.stack)
    [job_id] = chaos.submit(user, "diagnostics.sleep", {"seconds": 2})
    chaos.wait_for_status([job_id], "running", 1, timeout=30)
    time.sleep(0.5)

    node = holder(chaos, job_id).split("@", 1)[0]
    workers[node].kill()  # the process and its pool, as a lost machine
    killed = time.monotonic()

    [done] = chaos.wait_until_finished([job_id], timeout=60)
    scenario.recovery_s = time.monotonic() - killed - 2
    chaos.tally(scenario, [job_id])
    assert (done.status, done.attempts) == ("succeeded", 2)
    assert requeue_reasons(chaos, job_id) == ["lease_expired"]
    survivor = next(name for name in workers if name != node)
    assert f"job {job_id} (diagnostics.sleep) attempt 2 started" in workers[survivor].log()


def test_every_worker_dead_for_a_minute_loses_nothing(chaos: Chaos, scenario: Scenario) -> None:
    first = chaos.start_worker("w1", concurrency=2, beat=True)
    user = create_user(chaos.stack)
    running = chaos.submit(user, "diagnostics.sleep", {"seconds": 3}, count=2)
    chaos.wait_for_status(running, "running", 2, timeout=30)
    first.kill()
    waiting = chaos.submit(user, "diagnostics.echo", {"n": 1}, count=48)

    time.sleep(ALL_DEAD_SECONDS)
    chaos.start_worker("w2", concurrency=2)
    back = time.monotonic()

    done = chaos.wait_until_finished(running + waiting, timeout=60)
    scenario.recovery_s = time.monotonic() - back
    chaos.tally(scenario, running + waiting)
    assert {job.status for job in done} == {"succeeded"}
    # Only the two that were running when the worker died ran again.
    assert scenario.rerun == 2
    assert scenario.duplicated == 0
