"""The job lifecycle through a real worker process: queued, running, finished, cancelled,
as a client sees it over HTTP."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.support import jobs
from tests.support.factories import User
from tests.support.worker import WorkerProcess


def test_echo_job_runs_to_succeeded(
    app_client: TestClient, worker: WorkerProcess, user: User
) -> None:
    payload = {"text": "héllo", "n": 3, "nested": {"list": [1, 2, None]}}
    job = jobs.submit(app_client, user.headers, "diagnostics.echo", payload)
    assert job["status"] == "queued"

    done = jobs.wait_for(app_client, user.headers, job["id"])

    assert done["status"] == "succeeded"
    assert done["result"] == payload
    assert done["attempts"] == 1
    assert done["progress"] == 1.0
    assert done["started_at"] is not None
    assert done["finished_at"] >= done["started_at"] >= done["created_at"]


def test_events_are_dense_ordered_and_resumable(
    app_client: TestClient, worker: WorkerProcess, user: User
) -> None:
    job = jobs.submit(app_client, user.headers, "diagnostics.sleep", {"seconds": 2.5})
    jobs.wait_for(app_client, user.headers, job["id"])

    events = jobs.events(app_client, user.headers, job["id"])

    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    statuses = [e["data"]["status"] for e in events if e["type"] == "status"]
    assert statuses == ["queued", "running", "succeeded"]
    progress = [e["data"]["progress"] for e in events if e["type"] == "progress"]
    assert len(progress) >= 2
    assert progress == sorted(progress)
    assert jobs.events(app_client, user.headers, job["id"], after=2) == events[2:]


def test_cancel_running_sleep_stops_promptly(
    app_client: TestClient, worker: WorkerProcess, user: User
) -> None:
    job = jobs.submit(app_client, user.headers, "diagnostics.sleep", {"seconds": 60})
    jobs.wait_for(app_client, user.headers, job["id"], {"running"})

    response = app_client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=user.headers)

    assert response.status_code == 202
    assert response.json()["cancel_requested_at"] is not None
    # Cancelled, however long this machine takes, is the handler stopping at a checkpoint:
    # had it slept on, the job would have ended after its minute as succeeded.
    done = jobs.wait_for(app_client, user.headers, job["id"], timeout=50)
    assert done["status"] == "cancelled"
    types = [e["type"] for e in jobs.events(app_client, user.headers, job["id"])]
    assert "cancel_requested" in types


def test_cancel_queued_job_never_runs(
    app_client: TestClient, worker: WorkerProcess, user: User
) -> None:
    # Two long jobs fill both pool slots, so a third stays queued.
    blockers = [
        jobs.submit(app_client, user.headers, "diagnostics.sleep", {"seconds": 60})
        for _ in range(2)
    ]
    for blocker in blockers:
        jobs.wait_for(app_client, user.headers, blocker["id"], {"running"})
    queued = jobs.submit(app_client, user.headers, "diagnostics.echo", {"x": 1})

    response = app_client.post(f"/api/v1/jobs/{queued['id']}/cancel", headers=user.headers)

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    for blocker in blockers:
        app_client.post(f"/api/v1/jobs/{blocker['id']}/cancel", headers=user.headers)
        assert jobs.wait_for(app_client, user.headers, blocker["id"])["status"] == "cancelled"
    # The queued job's message is delivered now and must not run it.
    later = jobs.submit(app_client, user.headers, "diagnostics.echo", {"after": True})
    jobs.wait_for(app_client, user.headers, later["id"])
    final = jobs.get(app_client, user.headers, queued["id"])
    assert final["status"] == "cancelled"
    assert final["attempts"] == 0
    assert final["result"] is None


def test_cancel_finished_job_is_conflict(
    app_client: TestClient, worker: WorkerProcess, user: User
) -> None:
    job = jobs.submit(app_client, user.headers, "diagnostics.echo", {})
    jobs.wait_for(app_client, user.headers, job["id"])

    response = app_client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=user.headers)

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "job_finished"
