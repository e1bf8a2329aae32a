"""Delayed jobs: `delay_seconds` or `run_after` on POST /api/v1/jobs. A delayed job waits
in PostgreSQL, with no message at the broker, and beat's reconciler sends it when it is
due; nothing is published with a Celery countdown."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.jobs.celery_app import create_celery
from core.jobs.contracts import ECHO
from tests.support import jobs
from tests.support.factories import User
from tests.support.problems import assert_problem
from tests.support.stack import Stack
from tests.support.worker import WorkerProcess


def submit(client: TestClient, user: User, **when: object) -> dict[str, object]:
    response = client.post(
        "/api/v1/jobs", json={"kind": ECHO, "input": {"n": 1}, **when}, headers=user.headers
    )
    assert response.status_code == 202, response.text
    job: dict[str, object] = response.json()
    return job


def parse(text: object) -> datetime:
    assert isinstance(text, str)
    return datetime.fromisoformat(text)


def test_a_delayed_job_waits_through_a_broker_purge_and_runs_when_due(
    stack: Stack, app_client: TestClient, user: User, worker: WorkerProcess
) -> None:
    job = submit(app_client, user, delay_seconds=3)
    run_after = parse(job["run_after"])
    assert timedelta(seconds=2) < run_after - datetime.now(UTC) <= timedelta(seconds=3)
    # Nothing of it is at the broker to lose.
    create_celery(stack.settings, "tests-purge").control.purge()

    done = jobs.wait_for(app_client, user.headers, str(job["id"]), timeout=30)

    assert done["status"] == "succeeded"
    assert parse(done["started_at"]) >= run_after
    assert done["attempts"] == 1


def test_a_time_past_runs_now(app_client: TestClient, user: User, worker: WorkerProcess) -> None:
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    job = submit(app_client, user, run_after=past)

    assert jobs.wait_for(app_client, user.headers, str(job["id"]))["status"] == "succeeded"


def test_a_delayed_job_can_be_cancelled_while_it_waits(
    app_client: TestClient, user: User, worker: WorkerProcess
) -> None:
    at = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    job = submit(app_client, user, run_after=at)
    cancelled = app_client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=user.headers)
    assert cancelled.json()["status"] == "cancelled"

    # Past its time and a few reconciler rounds, it is still cancelled and never ran.
    jobs.wait_for(app_client, user.headers, str(job["id"]), {"cancelled"})
    time.sleep(4)
    after = jobs.get(app_client, user.headers, str(job["id"]))
    assert (after["status"], after["attempts"], after["started_at"]) == ("cancelled", 0, None)


@pytest.mark.parametrize(
    "when",
    [
        {"delay_seconds": 8 * 24 * 3600},
        {"delay_seconds": -1},
        {"run_after": (datetime.now(UTC) + timedelta(days=8)).isoformat()},
        {"run_after": "2030-01-01T00:00:00"},  # no offset: which time would it be?
        {"delay_seconds": 5, "run_after": datetime.now(UTC).isoformat()},
    ],
)
def test_a_delay_out_of_bounds_is_422(
    app_client: TestClient, user: User, when: dict[str, object]
) -> None:
    response = app_client.post(
        "/api/v1/jobs", json={"kind": ECHO, "input": {}, **when}, headers=user.headers
    )
    assert_problem(response, 422, "validation_failed")


def test_an_idempotency_key_stands_for_the_delay_as_sent(
    app_client: TestClient, user: User
) -> None:
    def post(**when: object) -> Any:
        return app_client.post(
            "/api/v1/jobs",
            json={"kind": ECHO, "input": {"n": 1}, **when},
            headers={**user.headers, "Idempotency-Key": "later"},
        )

    first = post(delay_seconds=600)
    # Sent again (a client retrying after a lost answer): the same job.
    again = post(delay_seconds=600)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    # The same key for another time, or for now, is another request.
    assert_problem(post(delay_seconds=60), 409, "idempotency_key_reused")
    assert_problem(post(), 409, "idempotency_key_reused")
    cancel = app_client.post(f"/api/v1/jobs/{first.json()['id']}/cancel", headers=user.headers)
    assert cancel.status_code == 200
