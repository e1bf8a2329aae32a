"""Following a job's events as a server-sent event stream: to the job's end, no longer than
the login, and a bounded number of streams per caller."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from core.db import Database
from tests.support import jobs
from tests.support.factories import User, create_user, log_in
from tests.support.problems import assert_problem
from tests.support.stack import Stack
from tests.support.worker import WorkerProcess


def _read_sse(client: TestClient, url: str, headers: dict[str, str]) -> list[dict[str, str]]:
    frames: list[dict[str, str]] = []
    current: dict[str, str] = {}
    with client.stream("GET", url, headers={**headers, "Accept": "text/event-stream"}) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if not line:
                if "id" in current:
                    frames.append(current)
                current = {}
            elif not line.startswith(":"):
                field, _, value = line.partition(": ")
                current[field] = value
    return frames


def test_event_stream_follows_the_job_to_its_end(
    app_client: TestClient, worker: WorkerProcess, user: User
) -> None:
    job = jobs.submit(app_client, user.headers, "diagnostics.sleep", {"seconds": 1.5})
    url = f"/api/v1/jobs/{job['id']}/events"

    frames = _read_sse(app_client, url, user.headers)

    assert [int(f["id"]) for f in frames] == list(range(1, len(frames) + 1))
    assert frames[-1]["event"] == "status"
    assert '"succeeded"' in frames[-1]["data"]
    resumed = _read_sse(app_client, url, {**user.headers, "Last-Event-ID": frames[1]["id"]})
    assert resumed == frames[2:]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _me_status(client: TestClient, access: str) -> int:
    return client.get("/api/v1/users/me", headers=_bearer(access)).status_code


def test_logout_ends_an_open_event_stream(
    app_client: TestClient, stack: Stack, db: Database, user: User
) -> None:
    job = app_client.post(
        "/api/v1/jobs",
        headers=user.headers,
        json={"kind": "diagnostics.sleep", "input": {"seconds": 60}},
    ).json()
    logout = threading.Timer(
        1.0,
        lambda: app_client.post("/api/v1/auth/logout", json={"refresh_token": user.refresh_token}),
    )

    # Should the stream outlive the login, the job's end ends it (a worker may run the job
    # for its minute), or at the latest this cancel: the test then fails on the job's
    # final status in the stream rather than hanging.
    def cancel_job() -> None:
        token = log_in(stack, user).token
        app_client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=_bearer(token))

    backstop = threading.Timer(120.0, cancel_job)

    logout.start()
    backstop.start()
    with app_client.stream(
        "GET",
        f"/api/v1/jobs/{job['id']}/events",
        headers={**user.headers, "Accept": "text/event-stream"},
    ) as stream:
        assert stream.status_code == 200
        lines = list(stream.iter_lines())
    logout.join()
    backstop.cancel()

    # The stream ended because the login did, before the job did.
    finished = [
        line
        for line in lines
        if any(f'"status":"{status}"' in line.replace(" ", "") for status in jobs.TERMINAL)
    ]
    assert finished == []
    assert any(line.startswith("id: 1") for line in lines)
    assert _me_status(app_client, user.token) == 401


SSE = {"Accept": "text/event-stream"}


@pytest.fixture
def one_stream_client(stack: Stack) -> Iterator[TestClient]:
    from api.app import create_app

    settings = stack.settings.model_copy(update={"event_streams_per_caller": 1})
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


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
