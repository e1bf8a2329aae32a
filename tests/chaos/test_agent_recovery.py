"""An agents worker killed outright mid-run (the whole threads-pool process, as an
out-of-memory kill or a lost machine would) loses nothing: the run is taken back once
its lease expires and finishes on another agents worker."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support import jobs
from tests.support.factories import create_user
from tests.support.openai_server import OpenAIServer, text, tool_call
from tests.support.stack import Stack
from tests.support.worker import WorkerProcess


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server


def agents_worker(stack: Stack, server: OpenAIServer, log_dir: Path) -> WorkerProcess:
    env = {
        **stack.env,
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API": "chat_completions",
        "OPENAI_MAX_RETRIES": "0",
    }
    log_dir.mkdir()
    return WorkerProcess(env, log_dir, beat=False, queues="agents", pool="threads")


def test_a_run_survives_its_worker_being_killed(
    stack: Stack,
    worker: WorkerProcess,  # its beat runs the reconciler
    openai_server: OpenAIServer,
    tmp_path: Path,
) -> None:
    if stack.redis_url is None:
        pytest.skip("needs Redis as the broker (REDIS_URL)")
    from api.app import create_app

    answer = {"category": "billing", "answer": "Refunded.", "confidence": 0.9}
    openai_server.script(
        # The first attempt's reply never arrives: its worker is killed while it waits.
        tool_call("transfer_to_billing", {}, delay_seconds=10),
        tool_call("transfer_to_billing", {}),
        text(json.dumps(answer)),
    )
    settings = stack.settings.model_copy(update={"openai_base_url": openai_server.base_url})
    first = agents_worker(stack, openai_server, tmp_path / "first")
    second: WorkerProcess | None = None
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            user = create_user(stack)
            response = client.post(
                "/api/v1/agents/triage/runs",
                headers=user.headers,
                json={"input": {"message": "I was charged twice."}},
            )
            assert response.status_code == 202, response.text
            job_id = response.json()["id"]
            deadline = time.monotonic() + 30
            while not openai_server.requests:
                assert time.monotonic() < deadline, "the first attempt never called the model"
                time.sleep(0.05)

            os.killpg(first.proc.pid, signal.SIGKILL)
            first.proc.wait()
            second = agents_worker(stack, openai_server, tmp_path / "second")
            done = jobs.wait_for(client, user.headers, job_id, timeout=90)
    finally:
        first.stop()
        if second is not None:
            second.stop()

    assert done["status"] == "succeeded", done
    assert done["attempts"] == 2
    assert done["result"]["final_agent"] == "billing"
    assert done["result"]["output"] == answer
    assert len(openai_server.requests) == 3
