"""The model adapters over real HTTP: both OpenAI APIs against the local stand-in, with
the client the worker builds for each run (`open_model`)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from core.agents.workflows import DocumentSummaryInput, TriageInput
from core.settings import Environment, OpenAIApi, Settings
from tests.support.agent_runs import Recorder
from tests.support.openai_server import OpenAIServer, error, text, tool_call
from worker.errors import PermanentJobError, TransientJobError
from worker.jobs.agents_run.failures import run_failure
from worker.jobs.agents_run.library import Document, Library
from worker.jobs.agents_run.model import open_model
from worker.jobs.agents_run.run import run_workflow

UPLOAD = uuid.UUID("00000000-0000-4000-8000-0000000000aa")


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as running:
        yield running


def settings(base_url: str, api: OpenAIApi = OpenAIApi.CHAT_COMPLETIONS) -> Settings:
    return Settings(
        environment=Environment.TEST,
        openai_base_url=base_url,
        openai_api=api,
        openai_model="stand-in",
        openai_max_retries=0,
        openai_timeout_seconds=5,
    )


def run(config: Settings, workflow: str, data: Any, library: Library | None = None) -> Any:
    async def go() -> Any:
        async with open_model(config) as model:
            return await run_workflow(
                workflow, data, library or Library([]), model, Recorder(), max_turns=5
            )

    return asyncio.run(go())


@pytest.mark.parametrize("api", list(OpenAIApi))
def test_tool_call_and_structured_output(server: OpenAIServer, api: OpenAIApi) -> None:
    summary = {"title": "T", "summary": "S", "key_points": ["k"], "entities": ["Porto"]}
    server.script(
        tool_call("read_page", {"upload_id": str(UPLOAD), "page": 1}),
        text(json.dumps(summary), input_tokens=50, output_tokens=20),
    )
    library = Library([Document(UPLOAD, "a.txt", "The Porto terminal opens in May.")])
    result = run(
        settings(server.base_url, api),
        "document_summary",
        DocumentSummaryInput(upload_id=UPLOAD),
        library,
    )

    assert result.output == summary
    assert result.usage.model_dump() == server.usage_totals()
    path = "/v1/responses" if api is OpenAIApi.RESPONSES else "/v1/chat/completions"
    assert [r.path for r in server.requests] == [path, path]
    assert "The Porto terminal opens in May." in json.dumps(server.requests[1].body)


@pytest.mark.parametrize("api", list(OpenAIApi))
def test_handoff(server: OpenAIServer, api: OpenAIApi) -> None:
    reply = {"category": "general", "answer": "Hi.", "confidence": 1}
    server.script(tool_call("transfer_to_general", {}), text(json.dumps(reply)))
    result = run(settings(server.base_url, api), "triage", TriageInput(message="Hello"))
    assert result.final_agent == "general"
    assert result.output == reply


@pytest.mark.parametrize(
    ("reply", "failure_type", "retry_after"),
    [
        # None: a transient error, retried as a new attempt after `retry_after` at least.
        (error(429, retry_after=7), None, 7.0),
        (error(503), None, None),
        (error(401), "model_auth_failed", None),
        (error(400, message="model not found"), "model_request_rejected", None),
    ],
)
def test_server_errors_map_to_retries_or_failures(
    server: OpenAIServer, reply: Any, failure_type: str | None, retry_after: float | None
) -> None:
    server.script(reply)
    with pytest.raises(openai.APIStatusError) as caught:
        run(settings(server.base_url), "triage", TriageInput(message="x"))
    failure = run_failure(caught.value, 5)
    if failure_type is None:
        assert isinstance(failure, TransientJobError)
        assert failure.retry_after == retry_after
    else:
        assert isinstance(failure, PermanentJobError)
        assert failure.type == failure_type
    if failure_type == "model_request_rejected":
        assert "(400): model not found" in str(failure)


def test_a_server_that_is_down_is_worth_a_retry() -> None:
    config = settings("http://127.0.0.1:9/v1")
    with pytest.raises(openai.APIConnectionError) as caught:
        run(config, "triage", TriageInput(message="x"))
    assert isinstance(run_failure(caught.value, 5), TransientJobError)
