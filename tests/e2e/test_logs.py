"""JSON logs of a run as production has it: the API under uvicorn, a worker and beat,
all with LOG_FORMAT=json. A password is reset, a member invited and a file uploaded
through a presigned URL; then the logs are read as an operator would: every line about
a job names it, its kind, tenant, attempt and the request that submitted it, and no
secret of the run appears anywhere.

The run has a broker and storage of its own (the filesystem broker and local disk, as
the embedded default), so this worker, and no other, runs its jobs."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select

from core.jobs.contracts import EMAIL_SEND, UPLOAD_PROCESS
from core.models import Job
from tests.support import samples
from tests.support.api_server import ApiServer
from tests.support.factories import PASSWORD, create_tenant, create_user
from tests.support.smtp import Received
from tests.support.stack import Stack
from tests.support.worker import WorkerProcess

NEW_PASSWORD = "another long password 7"


@pytest.fixture
def run(stack: Stack, tmp_path: Path) -> Iterator[tuple[ApiServer, WorkerProcess]]:
    env = {k: v for k, v in stack.env.items() if not k.startswith(("S3_", "DO_SPACES_"))}
    env.update({"BROKER_URL": "filesystem://", "DATA_DIR": str(tmp_path), "LOG_FORMAT": "json"})
    api = ApiServer(env, tmp_path)
    worker = WorkerProcess(env, tmp_path)
    yield api, worker
    worker.stop()
    api.stop()


def json_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for text in path.read_text(errors="replace").splitlines():
        if text.startswith("{"):
            lines.append(json.loads(text))
    return lines


def test_json_logs_follow_each_job_and_keep_no_secret(
    stack: Stack, run: tuple[ApiServer, WorkerProcess], tmp_path: Path
) -> None:
    api, worker = run
    user = create_user(stack)
    team = create_tenant(stack, user, "Logged team")
    invitee = f"invitee-{uuid.uuid4().hex[:8]}@example.com"
    reset_request = f"reset-{uuid.uuid4().hex[:8]}"
    upload_request = f"upload-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=api.url, timeout=30) as client:
        token = _invite(client, stack, user.headers, team, invitee)
        signature, upload_job = _upload_presigned(client, user.headers, upload_request)
        # Last: a reset ends the user's logins.
        code = _reset_password(client, stack, user.email, reset_request)

    with stack.db.transaction() as session:
        reset_job = session.scalars(
            select(Job.id).where(Job.kind == EMAIL_SEND, Job.request_id == reset_request)
        ).one()
    # Every line about a job carries the job, and the request that submitted it.
    worker_lines = json_lines(worker.log_path)
    for job_id, kind, tenant, request_id in (
        (str(reset_job), EMAIL_SEND, None, reset_request),
        (upload_job, UPLOAD_PROCESS, str(user.personal_tenant_id), upload_request),
    ):
        about = [line for line in worker_lines if job_id in json.dumps(line)]
        assert len(about) >= 3, about  # received, started, ended at least
        for line in about:
            assert line["job_id"] == job_id, line
            assert line["kind"] == kind, line
        ran = [line for line in about if "attempt" in line]
        assert ran, about
        for line in ran:
            assert line["attempt"] == 1, line
            assert line.get("tenant_id") == tenant, line
            assert line["request_id"] == request_id, line
    api_lines = json_lines(api.log_path)
    # uvicorn's own lines, its access log included, are JSON too.
    assert len(api_lines) == len(api.log().splitlines())
    assert any(line.get("request_id") == upload_request for line in api_lines), api_lines[-20:]
    assert {line["process"] for line in api_lines} == {"api"}
    assert {line["process"] for line in worker_lines} == {"worker"}

    # No secret of the run in any log: not the code, the token, the URL's signature or
    # a password.
    logs = "\n".join(
        path.read_text(errors="replace")
        for path in (api.log_path, worker.log_path, tmp_path / "beat.log")
    )
    for secret in (code, token, signature, NEW_PASSWORD, PASSWORD):
        assert secret not in logs


def _reset_password(client: httpx.Client, stack: Stack, email: str, request_id: str) -> str:
    seen = len(stack.smtp.received)
    response = client.post(
        "/api/v1/auth/password-reset/request",
        json={"email": email},
        headers={"X-Request-ID": request_id},
    )
    assert response.status_code == 202, response.text
    mail = _mail_to(stack, email, seen)
    found = re.search(r"\b(\d{6,8})\b", mail.message.get_content())
    assert found is not None
    confirmed = client.post(
        "/api/v1/auth/password-reset/confirm",
        json={"email": email, "code": found.group(1), "new_password": NEW_PASSWORD},
    )
    assert confirmed.status_code == 204, confirmed.text
    return found.group(1)


def _invite(
    client: httpx.Client, stack: Stack, headers: dict[str, str], team: uuid.UUID, email: str
) -> str:
    seen = len(stack.smtp.received)
    response = client.post(
        f"/api/v1/tenants/{team}/members", headers=headers, json={"email": email, "role": "member"}
    )
    assert response.status_code == 201, response.text
    found = re.search(
        r"invitation token is (\S+)", _mail_to(stack, email, seen).message.get_content()
    )
    assert found is not None
    return found.group(1)


def _mail_to(stack: Stack, email: str, seen: int) -> Received:
    return stack.smtp.wait_for(
        lambda item: email in item.rcpt_tos and stack.smtp.received.index(item) >= seen,
        timeout=30,
    )


def _upload_presigned(
    client: httpx.Client, headers: dict[str, str], request_id: str
) -> tuple[str, str]:
    """Presign, PUT the bytes to the URL (the API itself, on local storage), complete;
    returns the URL's signature and the job's id once it has succeeded."""
    data = samples.csv_text()
    presigned = client.post(
        "/api/v1/uploads/presign",
        headers=headers,
        json={"filename": "logged.csv", "size": len(data), "content_type": "text/csv"},
    )
    assert presigned.status_code in (200, 201), presigned.text
    url = presigned.json()["url"]
    signature = parse_qs(urlsplit(url).query)["signature"][0]
    put = client.put(url, content=data, headers=presigned.json()["headers"])
    assert put.status_code in (200, 204), put.text
    completed = client.post(
        f"/api/v1/uploads/{presigned.json()['upload_id']}/complete",
        headers={**headers, "X-Request-ID": request_id},
    )
    assert completed.status_code == 200, completed.text
    job_id: str = completed.json()["job"]["id"]
    deadline = time.monotonic() + 60
    while (status := client.get(f"/api/v1/jobs/{job_id}", headers=headers).json()["status"]) in (
        "queued",
        "running",
    ):
        assert time.monotonic() < deadline, "the upload's job did not finish"
        time.sleep(0.2)
    assert status == "succeeded"
    return signature, job_id
