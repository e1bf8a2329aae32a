"""CORS as a browser exercises it: real preflight requests against the app, with the
origins configured, and none by default."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.support.stack import Stack

FRONT_END = "https://app.example.com"


@pytest.fixture
def cors_client(stack: Stack) -> Iterator[TestClient]:
    from api.app import create_app

    settings = stack.settings.model_copy(update={"cors_origins": [FRONT_END]})
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def test_a_configured_origin_may_send_what_the_api_needs(cors_client: TestClient) -> None:
    response = cors_client.options(
        "/api/v1/jobs",
        headers={
            "Origin": FRONT_END,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": (
                "authorization, content-type, idempotency-key, x-tenant-id, last-event-id"
            ),
        },
    )

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == FRONT_END
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    for header in ("authorization", "idempotency-key", "x-tenant-id", "last-event-id"):
        assert header in allowed
    assert "access-control-allow-credentials" not in response.headers


def test_an_answer_exposes_the_headers_a_front_end_reads(cors_client: TestClient) -> None:
    response = cors_client.get("/healthz", headers={"Origin": FRONT_END})

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == FRONT_END
    exposed = response.headers["access-control-expose-headers"].lower()
    for header in ("x-request-id", "location", "retry-after"):
        assert header in exposed


def test_another_origin_is_refused_with_a_problem(cors_client: TestClient) -> None:
    response = cors_client.options(
        "/api/v1/jobs",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "cors_refused"
    assert response.json()["refused"] == ["origin"]
    assert "access-control-allow-origin" not in response.headers
    simple = cors_client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in simple.headers


def test_no_origin_is_allowed_unless_configured(app_client: TestClient) -> None:
    response = app_client.options(
        "/api/v1/jobs",
        headers={"Origin": FRONT_END, "Access-Control-Request-Method": "GET"},
    )

    assert "access-control-allow-origin" not in response.headers
    assert response.headers["content-type"] == "application/problem+json"
