"""Fair dispatch with real workers: each tenant holds at most its cap of slots per
queue (here TENANT_CONCURRENCY=1), the rest wait in PostgreSQL in its line, and the
lines are served in turn. Each test has a broker of its own (the filesystem broker),
so only its own worker and beat run its jobs."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from core.db import Database
from core.jobs import dispatch
from core.jobs.contracts import SLEEP
from core.models import Job
from tests.support import jobs
from tests.support.factories import User, create_user
from tests.support.rows import finish_unhanded
from tests.support.stack import Stack, own_database
from tests.support.worker import WorkerProcess

SHORT = {"seconds": 0.3}


@dataclass
class Fair:
    # The session's services on a database of its own: the session worker's beat, whose
    # sweep works with the default cap, never sees these tenants' lines.
    stack: Stack
    client: TestClient
    start_worker: Callable[..., WorkerProcess]


@pytest.fixture
def fair(stack: Stack, tmp_path: Path) -> Iterator[Fair]:
    from api.app import create_app

    env = {"BROKER_URL": "filesystem://", "DATA_DIR": str(tmp_path), "TENANT_CONCURRENCY": "1"}
    updates = {
        "broker_url": SecretStr("filesystem://"),
        "data_dir": tmp_path,
        "tenant_concurrency": 1,
    }
    started: list[WorkerProcess] = []
    with own_database(stack, env, updates) as own:

        def start_worker(**options: Any) -> WorkerProcess:
            log_dir = tmp_path / f"worker-{len(started)}"
            log_dir.mkdir()
            worker = WorkerProcess(own.env, log_dir, name=f"fair-{len(started)}", **options)
            started.append(worker)
            return worker

        try:
            with TestClient(create_app(own.settings), raise_server_exceptions=False) as client:
                yield Fair(own, client, start_worker)
        finally:
            for worker in started:
                worker.stop()


def started_order(db: Database, job_ids: list[str]) -> list[str]:
    with db.transaction() as session:
        rows = session.execute(
            select(Job.id)
            .where(Job.id.in_([uuid.UUID(j) for j in job_ids]))
            .order_by(Job.started_at)
        ).all()
    return [str(row.id) for row in rows]


def submit(fair: Fair, user: User, job_input: dict[str, Any] = SHORT) -> str:
    job_id: str = jobs.submit(fair.client, user.headers, SLEEP, job_input)["id"]
    return job_id


def test_tenants_with_jobs_waiting_are_served_in_turn(fair: Fair) -> None:
    a, b, c = (create_user(fair.stack) for _ in range(3))
    submitted = [(a, submit(fair, a)) for _ in range(3)]
    submitted += [(b, submit(fair, b)) for _ in range(2)]
    submitted += [(c, submit(fair, c)) for _ in range(2)]
    owner = {job_id: user.email for user, job_id in submitted}

    # Each tenant's first job was sent; the others wait in their tenant's line.
    reasons = [jobs.get(fair.client, u.headers, j)["waiting_reason"] for u, j in submitted]
    assert reasons == ["broker", "tenant_limit", "tenant_limit"] + ["broker", "tenant_limit"] * 2

    fair.start_worker(concurrency=1)
    for user, job_id in submitted:
        assert jobs.wait_for(fair.client, user.headers, job_id)["status"] == "succeeded"

    # Queued A, A, A, B, B, C, C; run A, B, C, A, B, C, A.
    order = [owner[job_id] for job_id in started_order(fair.stack.db, [j for _, j in submitted])]
    assert order == [a.email, b.email, c.email, a.email, b.email, c.email, a.email]


def test_a_tenants_cap_is_per_queue(fair: Fair) -> None:
    user = create_user(fair.stack)
    first, second = submit(fair, user, {"seconds": 2}), submit(fair, user, SHORT)
    upload = fair.client.post(
        "/api/v1/uploads",
        files={"file": ("notes.txt", b"fair shares\n", "text/plain")},
        headers=user.headers,
    )
    assert upload.status_code == 201, upload.text
    processing = upload.json()["job"]
    # The upload's processing is in another queue: its tenant's slot there is free.
    assert processing["waiting_reason"] == "broker"
    assert jobs.get(fair.client, user.headers, second)["waiting_reason"] == "tenant_limit"

    fair.start_worker(concurrency=2)
    done = jobs.wait_for(fair.client, user.headers, processing["id"])
    assert done["status"] == "succeeded"
    # It ran beside the first sleep, while the second still waited for that one's slot.
    first_job = jobs.wait_for(fair.client, user.headers, first)
    second_job = jobs.wait_for(fair.client, user.headers, second)
    assert done["finished_at"] < first_job["finished_at"]
    assert second_job["started_at"] >= first_job["finished_at"]


def test_a_killed_worker_gives_its_tenants_slot_back(fair: Fair) -> None:
    user = create_user(fair.stack)
    held, waiting = submit(fair, user, {"seconds": 3}), submit(fair, user, SHORT)
    doomed = fair.start_worker(concurrency=1)
    jobs.wait_for(fair.client, user.headers, held, {"running"})
    doomed.kill()  # beat lives on: its reconciler takes the job back once the lease ends

    fair.start_worker(concurrency=1, beat=False)
    first = jobs.wait_for(fair.client, user.headers, held, timeout=60)
    second = jobs.wait_for(fair.client, user.headers, waiting, timeout=60)
    assert (first["status"], first["attempts"]) == ("succeeded", 2)
    assert second["status"] == "succeeded"
    # Never both at once: the waiting job started once the slot's job had ended.
    assert second["started_at"] >= first["finished_at"]


def test_a_slot_freed_by_a_process_that_died_before_handing_it_on(fair: Fair) -> None:
    user = create_user(fair.stack)
    first, second = submit(fair, user), submit(fair, user)
    # The first job's worker writes its claim and its result, and dies.
    finish_unhanded(fair.stack.db, uuid.UUID(first))
    assert jobs.get(fair.client, user.headers, second)["waiting_reason"] == "tenant_limit"

    # The reconciler (beat) finds the free slot and sends the next job in line.
    fair.start_worker(concurrency=1)
    assert jobs.wait_for(fair.client, user.headers, second)["status"] == "succeeded"
    assert jobs.get(fair.client, user.headers, first)["attempts"] == 1


def test_cancelling_a_sent_job_hands_its_slot_on(fair: Fair) -> None:
    user = create_user(fair.stack)
    first, second = submit(fair, user), submit(fair, user)

    cancel = fair.client.post(f"/api/v1/jobs/{first}/cancel", headers=user.headers)
    assert cancel.status_code == 200, cancel.text

    # Sent at once by the cancel, before any worker or reconciler runs.
    assert jobs.get(fair.client, user.headers, second)["waiting_reason"] == "broker"
    fair.start_worker(concurrency=1, beat=False)
    assert jobs.wait_for(fair.client, user.headers, second)["status"] == "succeeded"


def test_a_job_dispatched_by_a_process_that_died_before_publishing_it(fair: Fair) -> None:
    user = create_user(fair.stack)
    first, second = submit(fair, user), submit(fair, user)
    # The first ends; the hand-off takes its slot for the second and commits, and its
    # process dies before the message is sent.
    finish_unhanded(fair.stack.db, uuid.UUID(first))
    with fair.stack.db.transaction() as session:
        taken = dispatch.dispatch_line(session, user.personal_tenant_id, "default", 1)
    assert [message.job_id for message in taken] == [uuid.UUID(second)]
    assert jobs.get(fair.client, user.headers, second)["waiting_reason"] == "broker"

    # Past the grace period, the reconciler sends what was never sent.
    fair.start_worker(concurrency=1)
    done = jobs.wait_for(fair.client, user.headers, second)
    assert (done["status"], done["attempts"]) == ("succeeded", 1)
