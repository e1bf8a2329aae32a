"""An API served as production serves it (uvicorn on a port), with a model server
configured, for the client and the `conveyor` commands, which talk to it over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.api_server import ApiServer
from tests.support.openai_server import OpenAIServer
from tests.support.stack import Stack

MODEL_ENV = {
    "OPENAI_API": "chat_completions",
    "OPENAI_MODEL": "stand-in-model",
    "OPENAI_MAX_RETRIES": "0",
}


@pytest.fixture(scope="module")
def api_env(stack: Stack, openai_server: OpenAIServer) -> dict[str, str]:
    return {**stack.env, **MODEL_ENV, "OPENAI_BASE_URL": openai_server.base_url}


@pytest.fixture(scope="module")
def api(api_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    server = ApiServer(api_env, tmp_path_factory.mktemp("api"))
    yield server
    server.stop()
