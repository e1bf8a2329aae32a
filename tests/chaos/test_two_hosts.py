"""Workers on two hosts (network namespaces of this machine, each joined to it by its
own link); the link of the host running a job goes dark mid-job. The job is taken back
when its lease runs out and finishes on the other host; the cut host, reconnected,
overwrites nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from core.models import JobEvent
from tests.chaos.conftest import CHAOS_SETTINGS, Chaos
from tests.support import netns
from tests.support.chaos_report import Scenario
from tests.support.factories import create_user
from tests.support.netns import TestHost
from tests.support.worker import WorkerProcess

LEASE = float(CHAOS_SETTINGS["JOB_LEASE_SECONDS"])
JOB_SECONDS = 4


@pytest.fixture
def hosts() -> Iterator[list[TestHost]]:
    netns.available()
    made: list[TestHost] = []
    try:
        made += [TestHost(), TestHost()]
        yield made
    finally:
        for host in made:
            host.remove()


def worker_on(chaos: Chaos, host: TestHost, name: str) -> WorkerProcess:
    env = {
        **chaos.stack.env,
        "DATABASE_URL": host.reach(chaos.stack.database_url),
        "BROKER_URL": host.reach(chaos.broker.url),
    }
    folder = chaos.folder / name
    folder.mkdir()
    worker = WorkerProcess(env, folder, concurrency=1, beat=False, name=name, prefix=host.prefix)
    chaos.workers.append(worker)
    return worker


def test_a_host_cut_off_mid_job_loses_it_to_the_other_and_overwrites_nothing(
    chaos: Chaos, scenario: Scenario, hosts: list[TestHost]
) -> None:
    chaos.start_worker("beat-only", concurrency=1, beat=True).kill()  # the reconciler
    by_name = {
        "h1": (hosts[0], worker_on(chaos, hosts[0], "h1")),
        "h2": (hosts[1], worker_on(chaos, hosts[1], "h2")),
    }
    user = create_user(chaos.stack)
    [job_id] = chaos.submit(user, "diagnostics.sleep", {"seconds": JOB_SECONDS})
    chaos.wait_for_status([job_id], "running", 1, timeout=30)
    time.sleep(1)

    [job] = chaos.jobs([job_id])
    assert job.lease_owner is not None
    cut_name = job.lease_owner.split("@", 1)[0]
    other_name = next(name for name in by_name if name != cut_name)
    cut_host, cut_worker = by_name[cut_name]
    cut_host.cut()
    cut_at = time.monotonic()

    [done] = chaos.wait_until_finished([job_id], timeout=LEASE + 30)
    scenario.recovery_s = time.monotonic() - cut_at - JOB_SECONDS
    assert (done.status, done.attempts) == ("succeeded", 2)
    assert f"job {job_id} (diagnostics.sleep) attempt 2 started" in by_name[other_name][1].log()

    # Reconnected, the cut host's attempt finds the job is no longer its own.
    with chaos.stack.db.transaction() as session:
        events_before = session.scalar(
            select(func.count()).select_from(JobEvent).where(JobEvent.job_id == job_id)
        )
    cut_host.reconnect()
    time.sleep(LEASE)
    [after] = chaos.jobs([job_id])
    with chaos.stack.db.transaction() as session:
        events_after = session.scalar(
            select(func.count()).select_from(JobEvent).where(JobEvent.job_id == job_id)
        )
    assert (after.status, after.attempts, after.result) == ("succeeded", 2, done.result)
    assert after.finished_at == done.finished_at
    assert events_after == events_before
    chaos.tally(scenario, [job_id])
    assert cut_worker.alive()
