"""Cheap requests must stay cheap: /readyz answers from a recent check, and a caller
holds a bounded number of event streams open."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from tests.support import jobs
from tests.support.factories import User, create_user
from tests.support.problems import assert_problem
from tests.support.stack import Stack

SSE = {"Accept": "text/event-stream"}


@pytest.fixture
def one_stream_client(stack: Stack) -> Iterator[TestClient]:
    from api.app import create_app

    settings = stack.settings.model_copy(update={"event_streams_per_caller": 1})
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def test_readiness_is_checked_at_most_every_two_seconds(app_client: TestClient) -> None:
    started = time.monotonic()
    first = app_client.get("/readyz")
    second = app_client.get("/readyz")
    elapsed = time.monotonic() - started

    assert first.status_code == second.status_code == 200
    assert first.json()["status"] == "ok"
    checked = datetime.fromisoformat(first.json()["checked_at"])
    if elapsed < 2:  # the second call came within the first check's lifetime
        assert second.json()["checked_at"] == first.json()["checked_at"]
    time.sleep(2.1)
    third = app_client.get("/readyz").json()
    assert datetime.fromisoformat(third["checked_at"]) > checked


def test_a_caller_over_the_stream_cap_gets_a_429_until_one_closes(
    one_stream_client: TestClient, stack: Stack
) -> None:
    client = one_stream_client
    user: User = create_user(stack)
    # Queued and never run here (no worker reads this app's jobs in time to matter):
    # its stream stays open.
    job = jobs.submit(client, user.headers, "diagnostics.sleep", {"seconds": 600})
    url = f"/api/v1/jobs/{job['id']}/events"

    with client.stream("GET", url, headers={**user.headers, **SSE}) as first:
        assert first.status_code == 200
        second = client.get(url, headers={**user.headers, **SSE})
        assert_problem(second, 429, "too_many_streams")
        assert second.headers["retry-after"] == "5"
        # The JSON listing is not a stream and stays available.
        assert client.get(url, headers=user.headers).status_code == 200

    deadline = time.monotonic() + 10
    while True:
        with client.stream("GET", url, headers={**user.headers, **SSE}) as again:
            if again.status_code == 200 or time.monotonic() > deadline:
                break
        time.sleep(0.1)
    assert again.status_code == 200
    client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=user.headers)


def test_the_cap_is_per_caller(one_stream_client: TestClient, stack: Stack) -> None:
    client = one_stream_client
    a, b = create_user(stack), create_user(stack)
    job_a = jobs.submit(client, a.headers, "diagnostics.sleep", {"seconds": 600})
    job_b = jobs.submit(client, b.headers, "diagnostics.sleep", {"seconds": 600})

    with (
        client.stream(
            "GET", f"/api/v1/jobs/{job_a['id']}/events", headers={**a.headers, **SSE}
        ) as first,
        client.stream(
            "GET", f"/api/v1/jobs/{job_b['id']}/events", headers={**b.headers, **SSE}
        ) as second,
    ):
        assert first.status_code == second.status_code == 200
    for user, job in ((a, job_a), (b, job_b)):
        client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=user.headers)
