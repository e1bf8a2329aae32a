"""A key that may read jobs but not uploads sees how a job about uploads is going, not
what it read: neither its result (a CSV's rows, an agent's answer) nor its step events
(text an agent's tools returned)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import update

from core.identity.access import Scope
from core.jobs.contracts import AGENT_RUN, ECHO, UPLOAD_PROCESS
from core.models import Job, JobEvent, Upload, UploadStatus
from core.uploads.keys import upload_key
from tests.support.factories import User, create_api_key, create_job
from tests.support.problems import assert_problem
from tests.support.stack import Stack

SECRET_ROWS = {"sample_rows": [["name", "salary"], ["Ada", "120000"]]}


def _finished_with_steps(stack: Stack, user: User, kind: str, job_input: dict[str, Any]) -> str:
    """A job that succeeded with SECRET_ROWS as its result, after a tool returned them."""
    job_id = create_job(stack, user.personal_tenant_id, user, kind, job_input)
    with stack.db.transaction() as session:
        session.add(
            JobEvent(job_id=job_id, seq=2, type="tool_result", data={"output": SECRET_ROWS})
        )
        session.add(JobEvent(job_id=job_id, seq=3, type="status", data={"status": "succeeded"}))
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(status="succeeded", result=SECRET_ROWS, event_seq=3, progress=1.0)
        )
    return str(job_id)


def test_without_uploads_read_a_job_about_uploads_shows_no_contents(
    app_client: TestClient, stack: Stack, user: User
) -> None:
    key = create_api_key(stack, user.personal_tenant_id, user, [Scope.JOBS_READ])
    for kind, job_input in (
        (UPLOAD_PROCESS, {"upload_id": str(uuid.uuid4())}),
        (AGENT_RUN, {"workflow": "triage", "input": {"message": "hello"}}),
    ):
        job_id = _finished_with_steps(stack, user, kind, job_input)

        job = app_client.get(f"/api/v1/jobs/{job_id}", headers=key.headers).json()
        assert job["status"] == "succeeded"
        assert job["result"] is None
        assert job["withheld"] == ["result", "step_events"]

        events = app_client.get(f"/api/v1/jobs/{job_id}/events", headers=key.headers).json()
        assert [e["type"] for e in events["items"]] == ["status", "status"]
        assert events["next_after"] == 3
        stream = app_client.get(
            f"/api/v1/jobs/{job_id}/events",
            headers={**key.headers, "Accept": "text/event-stream"},
        )
        assert "Ada" not in stream.text
        assert "event: status" in stream.text


def test_with_uploads_read_or_a_login_the_contents_are_there(
    app_client: TestClient, stack: Stack, user: User
) -> None:
    key = create_api_key(
        stack, user.personal_tenant_id, user, [Scope.JOBS_READ, Scope.UPLOADS_READ]
    )
    job_id = _finished_with_steps(stack, user, UPLOAD_PROCESS, {"upload_id": str(uuid.uuid4())})

    for headers in (key.headers, user.headers):
        job = app_client.get(f"/api/v1/jobs/{job_id}", headers=headers).json()
        assert job["result"] == SECRET_ROWS
        assert job["withheld"] == []
        events = app_client.get(f"/api/v1/jobs/{job_id}/events", headers=headers).json()
        assert "tool_result" in [e["type"] for e in events["items"]]


def test_other_kinds_show_their_result_to_a_jobs_read_key(
    app_client: TestClient, stack: Stack, user: User
) -> None:
    key = create_api_key(stack, user.personal_tenant_id, user, [Scope.JOBS_READ])
    job_id = _finished_with_steps(stack, user, ECHO, {"x": 1})

    job = app_client.get(f"/api/v1/jobs/{job_id}", headers=key.headers).json()
    assert job["result"] == SECRET_ROWS
    assert job["withheld"] == []


def test_no_other_answer_carries_what_a_job_read_withholds(
    app_client: TestClient, stack: Stack, user: User
) -> None:
    # The same job reached another way: an upload completed again (uploads:write), and
    # a run requested again with its Idempotency-Key.
    job_id = _finished_with_steps(stack, user, UPLOAD_PROCESS, {"upload_id": str(uuid.uuid4())})
    upload_id = uuid.uuid4()
    with stack.db.transaction() as session:
        session.add(
            Upload(
                id=upload_id,
                tenant_id=user.personal_tenant_id,
                user_id=user.id,
                filename="salaries.csv",
                content_type="text/csv",
                size=10,
                storage_key=upload_key(user.personal_tenant_id, upload_id),
                status=UploadStatus.STORED,
                job_id=uuid.UUID(job_id),
            )
        )
    writer = create_api_key(
        stack, user.personal_tenant_id, user, [Scope.JOBS_READ, Scope.UPLOADS_WRITE]
    )

    again = app_client.post(f"/api/v1/uploads/{upload_id}/complete", headers=writer.headers)

    assert again.status_code == 200, again.text
    assert again.json()["job"]["result"] is None
    assert again.json()["job"]["withheld"] == ["result", "step_events"]


def test_a_run_that_reads_uploads_needs_the_uploads_scope(stack: Stack, user: User) -> None:
    # The run's answer is made of the uploads' contents: the scope that reads those.
    from api.app import create_app

    settings = stack.settings.model_copy(update={"openai_base_url": "http://127.0.0.1:9/v1"})
    runner = create_api_key(
        stack, user.personal_tenant_id, user, [Scope.JOBS_READ, Scope.AGENTS_RUN]
    )
    body = {"input": {"question": "What is in it?", "upload_ids": [str(uuid.uuid4())]}}
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        refused = client.post("/api/v1/agents/ask_files/runs", headers=runner.headers, json=body)
        # A login has every scope: its request gets as far as the upload, unknown here.
        by_login = client.post("/api/v1/agents/ask_files/runs", headers=user.headers, json=body)

    assert_problem(refused, 403, "insufficient_scope")
    assert refused.json()["required_scope"] == "uploads:read"
    assert_problem(by_login, 422, "upload_has_no_text")
