"""The system lane: account email runs on a worker of its own (the Procfile's `system`
process), so a tenant who fills every slot of the job workers does not delay a reset
code. The run has a broker of its own (the filesystem broker), so only its two
workers, set up as the Procfile's `worker` and `system`, run its jobs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from core.jobs.contracts import SLEEP
from tests.support import jobs
from tests.support.factories import create_user
from tests.support.stack import Stack
from tests.support.worker import WorkerProcess


@pytest.fixture
def lane(stack: Stack, tmp_path: Path) -> Iterator[TestClient]:
    from api.app import create_app

    env = {**stack.env, "BROKER_URL": "filesystem://", "DATA_DIR": str(tmp_path)}
    settings = stack.settings.model_copy(
        update={"broker_url": SecretStr("filesystem://"), "data_dir": tmp_path}
    )
    (tmp_path / "jobs").mkdir()
    (tmp_path / "system").mkdir()
    started = [
        WorkerProcess(
            env, tmp_path / "jobs", beat=False, queues="default,uploads", name="lane-jobs"
        ),
        WorkerProcess(
            env,
            tmp_path / "system",
            beat=False,
            queues="system",
            pool="threads",
            name="lane-system",
        ),
    ]
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            yield client
    finally:
        for worker in started:
            worker.stop()


def test_a_reset_email_is_sent_while_a_tenant_fills_every_job_slot(
    stack: Stack, lane: TestClient
) -> None:
    user = create_user(stack)
    flood = [jobs.submit(lane, user.headers, SLEEP, {"seconds": 60}) for _ in range(10)]
    # The job worker's two slots are taken; eight jobs wait behind them.
    for job in flood[:2]:
        jobs.wait_for(lane, user.headers, job["id"], {"running"})

    seen = len(stack.smtp.received)
    response = lane.post("/api/v1/auth/password-reset/request", json={"email": user.email})
    assert response.status_code == 202
    stack.smtp.wait_for(
        lambda item: user.email in item.rcpt_tos and stack.smtp.received.index(item) >= seen,
        timeout=30,
    )

    # Sent while the tenant's backlog had not moved: it did not wait behind it.
    statuses = [jobs.get(lane, user.headers, job["id"])["status"] for job in flood]
    assert statuses == ["running"] * 2 + ["queued"] * 8
    for job in flood:
        lane.post(f"/api/v1/jobs/{job['id']}/cancel", headers=user.headers)
