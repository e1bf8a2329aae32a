"""Agent runs executed by a real `agents` worker (threads pool, as in the Procfile) against
a local OpenAI-compatible server that answers from a script."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from tests.support import jobs
from tests.support.agent_runs import DOCUMENT, started, text_upload
from tests.support.factories import User, create_user
from tests.support.openai_server import OpenAIServer, error, text, tool_call
from tests.support.stack import Stack
from tests.support.worker import WorkerProcess

API = "/api/v1"


def steps(client: TestClient, user: User, job_id: str) -> list[tuple[str, dict[str, Any]]]:
    agent_steps = {"agent", "model_turn", "tool_call", "tool_result", "handoff"}
    return [
        (event["type"], event["data"])
        for event in jobs.events(client, user.headers, job_id)
        if event["type"] in agent_steps
    ]


def test_a_document_summary_reads_the_upload_with_a_tool(
    agents_api: TestClient,
    runner: User,
    openai_server: OpenAIServer,
    worker: WorkerProcess,
    agents_worker: WorkerProcess,
) -> None:
    upload_id = text_upload(agents_api, runner, DOCUMENT, worker)
    summary = {
        "title": "Harbour Lights Quarterly",
        "summary": "Revenue grew 12 percent.",
        "key_points": ["Revenue up 12 percent", "Porto terminal opens in May"],
        "entities": ["Maria Okafor", "Lisbon", "Porto"],
    }
    openai_server.script(
        tool_call("read_page", {"upload_id": upload_id, "page": 1}, input_tokens=40),
        text(json.dumps(summary), input_tokens=90, output_tokens=30),
    )
    job = started(agents_api, runner, "document_summary", {"upload_id": upload_id})
    assert job["kind"] == "agents.run"
    done = jobs.wait_for(agents_api, runner.headers, job["id"])

    assert done["status"] == "succeeded", done
    assert done["result"]["output"] == summary
    assert done["result"]["final_agent"] == "summarizer"
    assert done["result"]["usage"] == {
        "requests": 2,
        "input_tokens": 130,
        "output_tokens": 37,
        "total_tokens": 167,
    }
    assert done["result"]["usage"] == openai_server.usage_totals()
    # The tool read the file from storage: its text went back to the model.
    second = json.dumps(openai_server.requests[1].body)
    assert "Maria Okafor joins as chief operating officer" in second
    assert openai_server.requests[0].body["model"] == "stand-in-model"

    recorded = steps(agents_api, runner, job["id"])
    assert [kind for kind, _ in recorded] == [
        "agent",
        "model_turn",
        "tool_call",
        "tool_result",
        "model_turn",
    ]
    assert recorded[1][1] == {
        "agent": "summarizer",
        "turn": 1,
        "input_tokens": 40,
        "output_tokens": 7,
        "total_tokens": 47,
    }
    assert json.loads(recorded[2][1]["arguments"]) == {"upload_id": upload_id, "page": 1}
    assert "Porto terminal" in recorded[3][1]["output"]


def test_triage_hands_off_to_a_specialist(
    agents_api: TestClient, runner: User, openai_server: OpenAIServer, agents_worker: WorkerProcess
) -> None:
    answer = {"category": "billing", "answer": "We refunded the double charge.", "confidence": 0.8}
    openai_server.script(tool_call("transfer_to_billing", {}), text(json.dumps(answer)))
    job = started(agents_api, runner, "triage", {"message": "I was charged twice."})
    done = jobs.wait_for(agents_api, runner.headers, job["id"])

    assert done["status"] == "succeeded", done
    assert done["result"]["output"] == answer
    assert done["result"]["final_agent"] == "billing"
    recorded = steps(agents_api, runner, job["id"])
    assert ("handoff", {"from": "triage", "to": "billing"}) in recorded
    assert [data["agent"] for kind, data in recorded if kind == "agent"] == ["triage", "billing"]
    assert openai_server.requests[0].body["messages"][-1]["content"] == "I was charged twice."


def test_a_rate_limit_is_retried_after_the_servers_retry_after(
    agents_api: TestClient, runner: User, openai_server: OpenAIServer, agents_worker: WorkerProcess
) -> None:
    answer = {"category": "general", "answer": "Hello.", "confidence": 0.5}
    openai_server.script(
        error(429, retry_after=1), tool_call("transfer_to_general", {}), text(json.dumps(answer))
    )
    job = started(agents_api, runner, "triage", {"message": "Hi"})
    done = jobs.wait_for(agents_api, runner.headers, job["id"])

    assert done["status"] == "succeeded", done
    assert done["attempts"] == 2
    retries = [
        e["data"]
        for e in jobs.events(agents_api, runner.headers, job["id"])
        if e["data"].get("reason") == "retry"
    ]
    assert len(retries) == 1
    assert retries[0]["error"]["retryable"] is True
    assert "429" in retries[0]["error"]["message"]
    assert retries[0]["retry_in_seconds"] >= 1.0
    # Usage counts what the successful attempt used.
    assert done["result"]["usage"]["requests"] == 2


def test_rejected_credentials_fail_without_a_retry(
    agents_api: TestClient, runner: User, openai_server: OpenAIServer, agents_worker: WorkerProcess
) -> None:
    openai_server.script(error(401))
    job = started(agents_api, runner, "triage", {"message": "Hi"})
    done = jobs.wait_for(agents_api, runner.headers, job["id"])

    assert done["status"] == "failed"
    assert done["attempts"] == 1
    assert done["error"]["type"] == "model_auth_failed"
    assert done["error"]["retryable"] is False
    assert len(openai_server.requests) == 1


def test_an_answer_that_is_not_the_output_schema_fails_without_a_retry(
    agents_api: TestClient, runner: User, openai_server: OpenAIServer, agents_worker: WorkerProcess
) -> None:
    openai_server.script(tool_call("transfer_to_technical", {}), text("Have you tried turning it"))
    job = started(agents_api, runner, "triage", {"message": "It crashes."})
    done = jobs.wait_for(agents_api, runner.headers, job["id"])

    assert done["status"] == "failed"
    assert done["attempts"] == 1
    assert done["error"]["type"] == "invalid_model_output"


def test_a_cancelled_run_stops_after_the_current_model_turn(
    agents_api: TestClient, runner: User, openai_server: OpenAIServer, agents_worker: WorkerProcess
) -> None:
    openai_server.script(
        tool_call("transfer_to_billing", {}, delay_seconds=3), text("never asked for")
    )
    job = started(agents_api, runner, "triage", {"message": "Refund please"})
    deadline = time.monotonic() + 20
    while not openai_server.requests:
        assert time.monotonic() < deadline, "the model was never called"
        time.sleep(0.05)
    response = agents_api.post(f"{API}/jobs/{job['id']}/cancel", headers=runner.headers)
    assert response.status_code == 202, response.text
    done = jobs.wait_for(agents_api, runner.headers, job["id"])

    assert done["status"] == "cancelled"
    # The slow turn finished and was recorded; no other request was made.
    assert len(openai_server.requests) == 1
    assert openai_server.remaining == 1
    kinds = [kind for kind, _ in steps(agents_api, runner, job["id"])]
    assert kinds == ["agent", "model_turn"]


def test_a_run_over_the_responses_api(
    stack: Stack, openai_server: OpenAIServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A worker on OPENAI_API=responses. It and its API get a broker of their own (a
    filesystem one), so the module's chat-completions worker cannot take the run."""
    from api.app import create_app

    folder = tmp_path_factory.mktemp("responses")
    settings = stack.settings.model_copy(
        update={
            "openai_base_url": openai_server.base_url,
            "broker_url": SecretStr("filesystem://"),
            "data_dir": folder,
        }
    )
    env = {
        **stack.env,
        "BROKER_URL": "filesystem://",
        "DATA_DIR": str(folder),
        "OPENAI_BASE_URL": openai_server.base_url,
        "OPENAI_API": "responses",
    }
    proc = WorkerProcess(env, folder, beat=False, queues="agents", pool="threads")
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            user = create_user(stack)
            answer = {"category": "technical", "answer": "Update the app.", "confidence": 0.6}
            openai_server.script(tool_call("transfer_to_technical", {}), text(json.dumps(answer)))
            job = started(client, user, "triage", {"message": "The app crashes on start."})
            done = jobs.wait_for(client, user.headers, job["id"])
    finally:
        proc.stop()

    assert done["status"] == "succeeded", done
    assert done["result"]["output"] == answer
    assert done["result"]["final_agent"] == "technical"
    assert [r.path for r in openai_server.requests] == ["/v1/responses", "/v1/responses"]
    assert done["result"]["usage"] == openai_server.usage_totals()
