"""Agent runs' stand-ins, shared by the tests that start runs over HTTP and those that
follow them through a worker: one scripted OpenAI-compatible server, an API with it
configured as the model, and an `agents` worker (threads pool, as in the Procfile)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.support.factories import User, create_user
from tests.support.openai_server import OpenAIServer
from tests.support.stack import Stack
from tests.support.worker import WorkerProcess


@pytest.fixture(scope="session")
def openai_server() -> Iterator[OpenAIServer]:
    """Each test scripts its replies, which also forgets earlier requests."""
    with OpenAIServer() as server:
        yield server


@pytest.fixture(scope="session")
def agents_api(stack: Stack, openai_server: OpenAIServer) -> Iterator[TestClient]:
    """The API of a deployment that has a model configured."""
    from api.app import create_app

    settings = stack.settings.model_copy(update={"openai_base_url": openai_server.base_url})
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


# Per module, not per session: a worker left consuming the agents queue would take the
# runs of later tests that bring agents workers of their own (tests/chaos).
@pytest.fixture(scope="module")
def agents_worker(
    stack: Stack, openai_server: OpenAIServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    env = {
        **stack.env,
        "OPENAI_BASE_URL": openai_server.base_url,
        "OPENAI_API": "chat_completions",
        "OPENAI_MODEL": "stand-in-model",
        # Failed model requests go back to the job protocol at once, so its retries show.
        "OPENAI_MAX_RETRIES": "0",
    }
    # With beat: a retry waits in PostgreSQL, and the reconciler sends it when it is due.
    proc = WorkerProcess(
        env, tmp_path_factory.mktemp("agents-worker"), queues="agents", pool="threads"
    )
    yield proc
    proc.stop()


@pytest.fixture
def runner(stack: Stack) -> User:
    """Who starts the runs."""
    return create_user(stack)
