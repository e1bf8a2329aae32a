"""PostgreSQL restarts (`pg_ctl restart -m fast`: every connection cut) while jobs run
and report progress: their writes wait for it to come back, so the restart costs no
job an attempt and runs no handler twice."""

from __future__ import annotations

import time

from tests.chaos.conftest import Chaos
from tests.support.chaos_report import Scenario
from tests.support.factories import create_user


def test_a_postgres_restart_costs_running_jobs_nothing(chaos: Chaos, scenario: Scenario) -> None:
    chaos.start_worker("w1", concurrency=4, beat=True)
    user = create_user(chaos.stack)
    running = chaos.submit(user, "diagnostics.sleep", {"seconds": 5}, count=4)
    waiting = chaos.submit(user, "diagnostics.echo", {"waited": True}, count=8)
    chaos.wait_for_status(running, "running", 4, timeout=30)
    time.sleep(1)  # mid-job: each has written progress at least once

    chaos.postgres.restart()
    back = time.monotonic()

    done = chaos.wait_until_finished(running + waiting, timeout=60)
    scenario.recovery_s = time.monotonic() - back
    chaos.tally(scenario, running + waiting)
    assert {job.status for job in done} == {"succeeded"}, [(job.status, job.error) for job in done]
    assert [job.attempts for job in done] == [1] * len(done)
    assert scenario.duplicated == 0
