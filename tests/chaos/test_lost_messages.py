"""Messages the broker loses are sent again within the lost-message grace period and a
reconciler round, and only those: a backlog still waiting is never taken for lost."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import redis
from sqlalchemy import update

from core.models import Tenant
from tests.chaos.conftest import CHAOS_SETTINGS, Chaos
from tests.support.chaos_report import Scenario
from tests.support.factories import create_user

GRACE = float(CHAOS_SETTINGS["LOST_MESSAGE_GRACE_SECONDS"])
QUEUE = "default"


def waiting_job_ids(client: redis.Redis) -> list[uuid.UUID]:
    """The jobs whose messages wait in the queue (kombu's Redis list), oldest first."""
    raw: list[bytes] = client.lrange(QUEUE, 0, -1)  # type: ignore[assignment]
    return [uuid.UUID(json.loads(message)["headers"]["id"]) for message in reversed(raw)]


def test_a_broker_that_lost_every_message_loses_no_job(chaos: Chaos, scenario: Scenario) -> None:
    chaos.start_worker("beat-only", concurrency=1, beat=True).kill()  # beat lives on
    user = create_user(chaos.stack)
    ids = chaos.submit(user, "diagnostics.echo", {"n": 1}, count=20)
    deadline = time.monotonic() + 10
    while chaos.broker.waiting(QUEUE) < 20 and time.monotonic() < deadline:
        time.sleep(0.1)

    chaos.broker.lose_everything()
    restarted = time.monotonic()
    chaos.start_worker("w1", concurrency=2)

    done = chaos.wait_until_finished(ids, timeout=GRACE + 30)
    scenario.recovery_s = time.monotonic() - restarted
    chaos.tally(scenario, ids)
    assert {job.status for job in done} == {"succeeded"}
    assert scenario.rerun == 0
    assert scenario.duplicated == 0


# Redis only: it can drop single messages from the middle of a queue.
@pytest.mark.parametrize("chaos", ["redis"], indirect=True)
def test_only_the_lost_messages_of_a_backlog_are_sent_again(
    chaos: Chaos, scenario: Scenario
) -> None:
    # No worker consumes: the backlog waits at the broker for as long as this test likes.
    chaos.start_worker("beat-only", concurrency=1, beat=True).kill()
    user = create_user(chaos.stack)
    # With no cap, every job of the tenant is sent: the whole backlog is at the broker.
    with chaos.stack.db.transaction() as session:
        session.execute(
            update(Tenant).where(Tenant.id == user.personal_tenant_id).values(max_concurrency=0)
        )
    ids = chaos.submit(user, "diagnostics.echo", {"n": 1}, count=30)
    client = redis.Redis.from_url(chaos.broker.url)
    deadline = time.monotonic() + 10
    while len(waiting_job_ids(client)) < 30 and time.monotonic() < deadline:
        time.sleep(0.1)
    raw: list[bytes] = client.lrange(QUEUE, 0, -1)  # type: ignore[assignment]
    # Lose five messages from the front of the line (the oldest, the next delivered),
    # as a worker killed between taking a message and recording it would.
    lost = raw[-5:]
    for message in lost:
        client.lrem(QUEUE, 1, message.decode())
    lost_ids = {uuid.UUID(json.loads(m)["headers"]["id"]) for m in lost}
    cut = time.monotonic()

    deadline = cut + GRACE + 20
    while len(waiting_job_ids(client)) < 30 and time.monotonic() < deadline:
        time.sleep(0.1)
    scenario.recovery_s = time.monotonic() - cut
    # Sent again, once each; the 25 that were waiting all along were left alone.
    waiting = waiting_job_ids(client)
    assert sorted(map(str, waiting)) == sorted(map(str, ids))
    time.sleep(3)  # a few more reconciler rounds send nothing more
    assert len(waiting_job_ids(client)) == 30
    assert set(waiting[-5:]) == lost_ids  # the re-sent messages are the newest

    chaos.start_worker("w1", concurrency=2)
    done = chaos.wait_until_finished(ids, timeout=60)
    chaos.tally(scenario, ids)
    assert {job.status for job in done} == {"succeeded"}
    assert scenario.rerun == 0
