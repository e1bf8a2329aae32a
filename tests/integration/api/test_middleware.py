"""Headers every answer carries: request ids, no sniffing, no framing, and no caching
of answers that hold tokens or tenants' data."""

from __future__ import annotations

import re
from collections.abc import Mapping

from fastapi.testclient import TestClient

from tests.support.factories import User
from tests.support.problems import assert_problem
from tests.support.stack import Stack


def _assert_hardened(headers: Mapping[str, str]) -> None:
    assert headers.get("x-content-type-options") == "nosniff"
    assert headers.get("x-frame-options") == "DENY"
    assert headers.get("content-security-policy") == "frame-ancestors 'none'"
    assert headers.get("x-request-id")


def test_token_answers_are_never_cached(app_client: TestClient, user: User) -> None:
    response = app_client.post(
        "/api/v1/auth/login", data={"username": user.email, "password": user.password}
    )

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    _assert_hardened(response.headers)


def test_errors_and_data_carry_the_same_headers(app_client: TestClient, user: User) -> None:
    for response in (
        app_client.get("/api/v1/jobs", headers=user.headers),
        app_client.get("/api/v1/jobs"),  # 401
        app_client.get("/api/v1/no-such-route"),  # 404
    ):
        assert response.headers["cache-control"] == "no-store", response.url
        _assert_hardened(response.headers)


def test_the_docs_cannot_be_framed_but_their_assets_may_be_cached(
    app_client: TestClient,
) -> None:
    page = app_client.get("/docs")
    assert page.status_code == 200
    _assert_hardened(page.headers)

    assets = re.findall(r'(?:src|href)="(/static-offline-docs/[^"]+)"', page.text)
    assert assets
    asset = app_client.get(assets[0])
    assert asset.status_code == 200
    assert asset.headers.get("cache-control") != "no-store"


def test_an_event_stream_keeps_its_own_cache_policy(app_client: TestClient, user: User) -> None:
    job = app_client.post(
        "/api/v1/jobs", headers=user.headers, json={"kind": "diagnostics.echo", "input": {}}
    ).json()
    app_client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=user.headers)
    with app_client.stream(
        "GET",
        f"/api/v1/jobs/{job['id']}/events",
        headers={**user.headers, "Accept": "text/event-stream"},
    ) as stream:
        assert stream.headers["cache-control"] == "no-cache"
        assert stream.headers["x-content-type-options"] == "nosniff"


def test_request_id_is_echoed_or_made(app_client: TestClient) -> None:
    given = app_client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    made = app_client.get("/healthz")

    assert given.headers["x-request-id"] == "abc-123"
    assert len(made.headers["x-request-id"]) == 32


def test_oversized_body_is_413(app_client: TestClient, user: User, stack: Stack) -> None:
    big = "x" * (stack.settings.max_request_bytes + 1)
    response = app_client.post(
        "/api/v1/jobs",
        headers=user.headers,
        json={"kind": "diagnostics.echo", "input": {"big": big}},
    )
    assert_problem(response, 413, "payload_too_large")
