"""Flower, the monitor users watch, against real workers: each job's task ends in the
state its job ended in, the task view says what the job is without its secrets,
Flower's revoke is a cancel, and its `/waiting` page shows the jobs waiting in
PostgreSQL. Everything is read and done through Flower's own HTTP API."""

from __future__ import annotations

import io
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from core.jobs.celery_app import create_celery, publish_job
from core.jobs.contracts import ECHO, EMAIL_SEND, SLEEP
from core.jobs.messages import JobMessage
from core.jobs.states import JobStatus
from core.models import Job
from tests.support import jobs, samples
from tests.support.agent_runs import started
from tests.support.factories import create_job, create_tenant, create_user
from tests.support.flower import FlowerProcess
from tests.support.openai_server import OpenAIServer, error, text
from tests.support.processes import eventually
from tests.support.reconciler import reconciler_held_off
from tests.support.stack import Stack
from tests.support.worker import WorkerProcess

# The states a task ends in.
READY = {"SUCCESS", "FAILURE", "REVOKED"}


@pytest.fixture(scope="module")
def flower(
    stack: Stack,
    worker: WorkerProcess,
    agents_worker: WorkerProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FlowerProcess]:
    proc = FlowerProcess(stack.env, tmp_path_factory.mktemp("flower"))
    try:
        proc.wait_for_workers(2)
        yield proc
    finally:
        proc.stop()


def quiet(stack: Stack) -> None:
    """From here on only the test's own jobs run: what earlier tests left queued (some
    never published, or published to a broker no worker here reads) is cancelled, and
    what is running finishes first."""

    def settled() -> bool | None:
        with stack.db.transaction() as session:
            session.execute(
                update(Job)
                .where(Job.status == JobStatus.QUEUED)
                .values(status=JobStatus.CANCELLED, finished_at=func.now())
            )
            running = session.scalar(
                select(func.count()).select_from(Job).where(Job.status == JobStatus.RUNNING)
            )
        return True if running == 0 else None

    eventually(settled, 60, "no job running")
    time.sleep(1)  # the last events of what ran reach Flower


def test_flower_shows_each_job_as_it_ended(
    stack: Stack,
    app_client: TestClient,
    agents_api: TestClient,
    openai_server: OpenAIServer,
    worker: WorkerProcess,
    flower: FlowerProcess,
) -> None:
    user = create_user(stack)
    quiet(stack)
    before = flower.counters()

    echo = jobs.submit(app_client, user.headers, ECHO, {"note": "hello"})
    sleeper = jobs.submit(app_client, user.headers, SLEEP, {"seconds": 30})
    pdf = samples.pdf(["one", "two"])
    cut = ("cut.pdf", io.BytesIO(pdf[: len(pdf) // 2]), "application/pdf")
    upload = app_client.post("/api/v1/uploads", headers=user.headers, files={"file": cut})
    assert upload.status_code == 201, upload.text
    corrupt = upload.json()["job"]
    answer = {"category": "general", "answer": "Hello.", "confidence": 0.5}
    openai_server.script(error(503), text(json.dumps({**answer})))
    run = started(agents_api, user, "triage", {"message": "Hi"})
    jobs.wait_for(app_client, user.headers, sleeper["id"], {"running"})
    cancel = app_client.post(f"/api/v1/jobs/{sleeper['id']}/cancel", headers=user.headers)
    assert cancel.status_code in (200, 202), cancel.text
    ended = {
        job["id"]: jobs.wait_for(app_client, user.headers, job["id"], timeout=60)
        for job in (echo, sleeper, corrupt, run)
    }
    assert [ended[job["id"]]["status"] for job in (echo, sleeper, corrupt, run)] == [
        "succeeded",
        "cancelled",
        "failed",
        "succeeded",
    ], ended
    assert ended[run["id"]]["attempts"] == 2

    # Each task's state is its job's. Flower learns of it from the worker's events, a
    # moment after the job's row says so.
    def states() -> dict[str, str] | None:
        found = {job_id: flower.task(job_id).get("state", "") for job_id in ended}
        return found if set(found.values()) <= READY else None

    shown = eventually(states, 15, "every task ended in Flower")
    assert shown == {
        echo["id"]: "SUCCESS",
        sleeper["id"]: "REVOKED",
        corrupt["id"]: "FAILURE",
        run["id"]: "SUCCESS",
    }
    failed = flower.task(corrupt["id"])
    error_type = ended[corrupt["id"]]["error"]["type"]
    assert error_type in failed["exception"], failed
    assert ended[corrupt["id"]]["error"]["message"] in failed["exception"], failed
    assert not failed["traceback"], failed["traceback"]
    retried = flower.task(run["id"])
    assert retried["retried"] is not None, retried

    # The dashboard's counters agree with the job list, retries counted once each.
    def listed(status: str) -> int:
        response = app_client.get("/api/v1/jobs", params={"status": status}, headers=user.headers)
        assert response.status_code == 200, response.text
        return len(response.json()["items"])

    expected = Counter(
        {
            "task-succeeded": listed("succeeded"),
            "task-failed": listed("failed"),
            "task-revoked": listed("cancelled"),
            "task-retried": 1,
        }
    )
    assert expected == Counter(
        {"task-succeeded": 2, "task-failed": 1, "task-revoked": 1, "task-retried": 1}
    )

    def counted() -> Counter[str] | None:
        delta = flower.counters()
        delta.subtract(before)
        return delta if +delta == expected else None

    eventually(counted, 15, f"Flower's counters at {expected}")

    # A second delivery of a finished job is turned away by the claim and counts as nothing.
    celery = create_celery(stack.settings, "tests-duplicate")
    with stack.db.transaction() as session:
        row = session.get(Job, uuid.UUID(echo["id"]))
        assert row is not None
        publish_job(celery, JobMessage.of(row.id, row.kind, row.tenant_id, row.attempts, row.input))
    turned_away = f"job {echo['id']} not claimable"
    eventually(lambda: turned_away in worker.log() or None, 15, "the duplicate delivered")
    time.sleep(1)
    after = flower.counters()
    after.subtract(before)
    assert +after == expected
    assert flower.task(echo["id"])["state"] == "SUCCESS"


def test_the_task_view_says_what_the_job_is_without_its_secrets(
    stack: Stack, app_client: TestClient, worker: WorkerProcess, flower: FlowerProcess
) -> None:
    user = create_user(stack)
    sleeper = jobs.submit(app_client, user.headers, SLEEP, {"seconds": 0.1})
    jobs.wait_for(app_client, user.headers, sleeper["id"])

    shown = eventually(lambda: flower.task(sleeper["id"]).get("kwargs"), 15, "the task in Flower")
    # When it was sent: the API's task-sent event, which comes in a batch.
    assert eventually(lambda: flower.task(sleeper["id"]).get("sent"), 15, "the task's sent time")
    assert flower.task(sleeper["id"])["args"] == repr([sleeper["id"]])
    assert shown == repr(
        {
            "kind": SLEEP,
            "tenant": str(user.personal_tenant_id),
            "attempt": 1,
            "input": {"seconds": 0.1},
        }
    )

    # A reset email's task: its subject, never its address, body or code.
    seen = len(stack.smtp.received)
    response = app_client.post("/api/v1/auth/password-reset/request", json={"email": user.email})
    assert response.status_code == 202
    mail = stack.smtp.wait_for(
        lambda item: user.email in item.rcpt_tos and stack.smtp.received.index(item) >= seen,
        timeout=30,
    )
    code = re.search(r"\b(\d{6,8})\b", mail.message.get_content())
    assert code is not None
    with stack.db.transaction() as session:
        email_job = session.scalars(
            select(Job.id).where(Job.kind == EMAIL_SEND).order_by(Job.created_at.desc()).limit(1)
        ).one()
    task = eventually(
        lambda: (found := flower.task(str(email_job))).get("kwargs") and found, 15, "email task"
    )
    assert "'kind': 'email.send'" in task["kwargs"]
    assert "'tenant': 'system'" in task["kwargs"]
    assert mail.message["Subject"] in task["kwargs"]
    everything = json.dumps(task)
    assert code.group(1) not in everything
    assert user.email not in everything


def test_revoking_from_flower_cancels_the_job(
    stack: Stack, app_client: TestClient, worker: WorkerProcess, flower: FlowerProcess
) -> None:
    """The worker runs two jobs at once: two sleeps run, the third waits at the broker."""
    user = create_user(stack)
    quiet(stack)
    running = [jobs.submit(app_client, user.headers, SLEEP, {"seconds": 60}) for _ in range(2)]
    for job in running:
        jobs.wait_for(app_client, user.headers, job["id"], {"running"})
    waiting = jobs.submit(app_client, user.headers, SLEEP, {"seconds": 60})
    asked, killed = running

    for job, terminate in ((waiting, False), (asked, False), (killed, True)):
        flower.revoke(job["id"], terminate=terminate)
        done = jobs.wait_for(app_client, user.headers, job["id"], timeout=5)
        assert done["status"] == "cancelled", done
        reasons = [
            e["data"].get("reason") for e in jobs.events(app_client, user.headers, job["id"])
        ]
        assert "revoked_from_monitor" in reasons, reasons

    def revoked() -> dict[str, str] | None:
        states = {
            job["id"]: flower.task(job["id"]).get("state", "") for job in (waiting, asked, killed)
        }
        return states if set(states.values()) == {"REVOKED"} else None

    eventually(revoked, 15, "the three tasks REVOKED in Flower")
    # Past a lease and a few reconciler rounds, nothing came back to life.
    time.sleep(5)
    for job in (waiting, asked, killed):
        assert jobs.get(app_client, user.headers, job["id"])["status"] == "cancelled"
    # The worker replaced the process it killed and goes on running jobs.
    echo = jobs.submit(app_client, user.headers, ECHO, {"after": "revoke"})
    assert jobs.wait_for(app_client, user.headers, echo["id"])["status"] == "succeeded"


def test_flower_shows_the_jobs_waiting_per_tenant_and_reason(
    stack: Stack, flower: FlowerProcess
) -> None:
    owner = create_user(stack)
    tenant = create_tenant(stack, owner, "Backlogged")
    cap = stack.settings.tenant_concurrency
    with reconciler_held_off(stack.db):
        # Not published to any broker: only PostgreSQL knows they wait.
        for n in range(cap + 2):
            create_job(stack, tenant, owner, ECHO, {"n": n})

        response = flower.http.get("/waiting", params={"json": 1})
        page = flower.http.get("/waiting")
        anonymous = httpx.get(f"{flower.url}/waiting")

    assert response.status_code == 200, response.text
    line = next(line for line in response.json() if line["tenant_id"] == str(tenant))
    assert (line["tenant_name"], line["queue"], line["running"]) == ("Backlogged", "default", 0)
    assert line["waiting"] == {"scheduled": 0, "tenant_limit": 2, "broker": cap}
    assert page.status_code == 200
    assert "Backlogged" in page.text
    assert "tenant_limit" in page.text
    assert anonymous.status_code == 401
    quiet(stack)
