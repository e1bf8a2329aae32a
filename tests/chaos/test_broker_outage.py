"""The broker goes away while workers hold messages, and comes back (Redis empty, as it
keeps nothing on disk; RabbitMQ with its durable queues): no worker exits, the running
jobs finish and keep their results, and waiting jobs whose messages went with the
broker are sent again."""

from __future__ import annotations

import time

from tests.chaos.conftest import Chaos
from tests.support.chaos_report import Scenario
from tests.support.factories import create_user

OUTAGE_SECONDS = 10


def test_workers_ride_out_a_broker_outage_with_jobs_in_flight(
    chaos: Chaos, scenario: Scenario
) -> None:
    worker = chaos.start_worker("w1", concurrency=2, beat=True)
    user = create_user(chaos.stack)
    running = chaos.submit(user, "diagnostics.sleep", {"seconds": 4}, count=2)
    waiting = chaos.submit(user, "diagnostics.echo", {"waited": True}, count=6)
    chaos.wait_for_status(running, "running", 2, timeout=30)

    chaos.broker.stop()
    time.sleep(OUTAGE_SECONDS)
    chaos.broker.start()
    back = time.monotonic()

    done = chaos.wait_until_finished(running + waiting, timeout=60)
    scenario.recovery_s = time.monotonic() - back
    chaos.tally(scenario, running + waiting)
    assert worker.alive(), worker.log()[-3000:]
    assert {job.status for job in done} == {"succeeded"}
    # The running jobs were not stopped by the outage: one attempt each.
    assert all(job.attempts == 1 for job in done)
    assert scenario.duplicated == 0
    # And the worker consumes again (no restart by hand): a job sent now runs.
    after = chaos.submit(user, "diagnostics.echo", {"after": True})
    assert chaos.wait_until_finished(after, timeout=30)[0].status == "succeeded"
