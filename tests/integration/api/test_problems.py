"""Every error is problem+json with a stable code, 500s included, and says nothing of the
server's internals."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.support.factories import User
from tests.support.problems import assert_problem
from tests.support.stack import Stack
from tests.support.tokens import access_token


def test_unknown_route_and_method(app_client: TestClient) -> None:
    assert_problem(app_client.get("/api/v1/nothing-here"), 404, "not_found")
    assert_problem(app_client.delete("/healthz"), 405, "method_not_allowed")


def test_malformed_json_is_422(app_client: TestClient, user: User) -> None:
    response = app_client.post(
        "/api/v1/jobs",
        content=b"{not json",
        headers={**user.headers, "Content-Type": "application/json"},
    )
    assert_problem(response, 422, "validation_failed")


@pytest.fixture
def failing_client(stack: Stack) -> Iterator[TestClient]:
    from api.app import create_app

    app = create_app(stack.settings)

    def explode() -> None:
        raise RuntimeError("database password is hunter2")

    app.add_api_route("/explode", explode)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_unexpected_error_is_500_without_internals(failing_client: TestClient) -> None:
    response = failing_client.get("/explode")

    body = assert_problem(response, 500, "internal_error")
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    assert body["request_id"] == response.headers["x-request-id"]


def test_database_down_is_503_not_500(stack: Stack) -> None:
    from pydantic import SecretStr

    from api.app import create_app

    nowhere = stack.settings.model_copy(
        update={"database_url": SecretStr("postgresql://postgres@127.0.0.1:1/nothing")}
    )
    token = access_token(nowhere, uuid.uuid4())
    with TestClient(create_app(nowhere), raise_server_exceptions=False) as client:
        response = client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {token}"})

    assert_problem(response, 503, "service_unavailable")
    assert response.headers["retry-after"] == "1"
