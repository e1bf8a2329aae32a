"""Starting agent runs over HTTP: what is refused at submit, what is listed, and a
repeated request answered with its run."""

from __future__ import annotations

import io
from typing import Any

from fastapi.testclient import TestClient

from tests.support import jobs, samples
from tests.support.agent_runs import DOCUMENT, start, text_upload
from tests.support.factories import User, create_api_key, create_user
from tests.support.openai_server import OpenAIServer, error
from tests.support.stack import Stack
from tests.support.worker import WorkerProcess

API = "/api/v1"


def test_an_unprocessed_or_foreign_upload_is_refused_at_submit(
    agents_api: TestClient, runner: User, worker: WorkerProcess, stack: Stack
) -> None:
    stranger = create_user(stack)
    theirs = text_upload(agents_api, stranger, DOCUMENT, worker)
    response = agents_api.post(
        f"{API}/uploads",
        headers=runner.headers,
        files={"file": ("photo.png", io.BytesIO(samples.png(64, 64)), "image/png")},
    )
    assert response.status_code == 201, response.text
    image = response.json()
    jobs.wait_for(agents_api, runner.headers, image["job"]["id"], timeout=60)

    for upload_id in (theirs, image["upload"]["id"]):
        refused = start(agents_api, runner, "document_summary", {"upload_id": upload_id})
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "upload_has_no_text"
        assert refused.json()["upload_id"] == upload_id
    mine = text_upload(agents_api, runner, DOCUMENT, worker)
    ask = {"upload_ids": [mine, theirs], "question": "Who joins?"}
    refused = start(agents_api, runner, "ask_files", ask)
    assert refused.status_code == 422
    assert refused.json()["upload_id"] == theirs
    assert not [j for j in jobs_of(agents_api, runner) if j["kind"] == "agents.run"]


def jobs_of(client: TestClient, user: User) -> list[Any]:
    response = client.get(f"{API}/jobs", headers=user.headers, params={"limit": 100})
    assert response.status_code == 200
    items: list[Any] = response.json()["items"]
    return items


def test_without_a_model_configured_runs_are_503_and_nothing_is_queued(
    app_client: TestClient, user: User
) -> None:
    response = start(app_client, user, "triage", {"message": "Hi"})
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "agents_not_configured"
    assert jobs_of(app_client, user) == []


def test_workflows_are_listed_with_their_schemas(agents_api: TestClient, runner: User) -> None:
    response = agents_api.get(f"{API}/agents", headers=runner.headers)
    assert response.status_code == 200
    listed = {w["name"]: w for w in response.json()}
    assert set(listed) == {"document_summary", "triage", "ask_files"}
    assert listed["ask_files"]["input_schema"]["required"] == ["upload_ids", "question"]
    assert set(listed["document_summary"]["output_schema"]["properties"]) == {
        "title",
        "summary",
        "key_points",
        "entities",
    }
    assert agents_api.get(f"{API}/agents").status_code == 401


def test_bad_requests_get_clear_errors(agents_api: TestClient, runner: User) -> None:
    unknown = start(agents_api, runner, "poetry", {})
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "workflow_not_found"
    assert unknown.json()["known_workflows"] == ["ask_files", "document_summary", "triage"]

    invalid = start(agents_api, runner, "triage", {"message": ""})
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["field"] == "input.message"

    not_uuid = start(agents_api, runner, "document_summary", {"upload_id": "../etc/passwd"})
    assert not_uuid.status_code == 422
    assert not_uuid.json()["errors"][0]["field"] == "input.upload_id"

    internal = agents_api.post(
        f"{API}/jobs",
        headers=runner.headers,
        json={"kind": "agents.run", "input": {"workflow": "triage", "input": {"message": "x"}}},
    )
    assert internal.status_code == 422
    assert internal.json()["code"] == "unknown_job_kind"


def test_runs_need_the_agents_scope(agents_api: TestClient, stack: Stack, runner: User) -> None:
    headers = create_api_key(stack, runner.personal_tenant_id, runner).headers
    response = agents_api.post(
        f"{API}/agents/triage/runs", headers=headers, json={"input": {"message": "Hi"}}
    )
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"


def test_a_repeated_request_gets_its_run_even_after_the_upload_went(
    agents_api: TestClient,
    runner: User,
    openai_server: OpenAIServer,
    worker: WorkerProcess,
    agents_worker: WorkerProcess,
) -> None:
    upload_id = text_upload(agents_api, runner, DOCUMENT, worker)
    openai_server.script(error(401))
    headers = {**runner.headers, "Idempotency-Key": "summary-1"}
    body = {"input": {"upload_id": upload_id}}
    first = agents_api.post(f"{API}/agents/document_summary/runs", headers=headers, json=body)
    assert first.status_code == 202, first.text
    jobs.wait_for(agents_api, runner.headers, first.json()["id"])
    deleted = agents_api.delete(f"{API}/uploads/{upload_id}", headers=runner.headers)
    assert deleted.status_code == 204, deleted.text

    again = agents_api.post(f"{API}/agents/document_summary/runs", headers=headers, json=body)
    assert again.status_code == 202, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    # A new request (another key) for the deleted upload is refused.
    other = {**runner.headers, "Idempotency-Key": "summary-2"}
    refused = agents_api.post(f"{API}/agents/document_summary/runs", headers=other, json=body)
    assert refused.status_code == 422
    assert refused.json()["code"] == "upload_has_no_text"
