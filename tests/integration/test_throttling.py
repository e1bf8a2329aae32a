"""Logins, password resets and changes, registrations and invitations are rate limited
(429 with Retry-After) per client IP and per account from that IP; the account itself is
never locked."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Stack
from tests.integration.test_http_errors import assert_problem

WINDOW = 2.0


SMALL_LIMITS = {
    "login_limit_per_account": 3,
    "login_limit_per_ip": 6,
    "login_window_seconds": WINDOW,
    "reset_limit_per_account": 2,
    "reset_limit_per_ip": 4,
    "reset_window_seconds": WINDOW,
    "register_limit_per_ip": 2,
    "register_window_seconds": WINDOW,
    "invite_limit_per_ip": 100,
    "invite_limit_per_recipient": 2,
    "invite_window_seconds": WINDOW,
}


def _address() -> str:
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"


@pytest.fixture
def throttled_app(stack: Stack) -> Any:
    """An API with small limits."""
    from api.app import create_app

    return create_app(stack.settings.model_copy(update=SMALL_LIMITS))


@pytest.fixture
def throttled(throttled_app: Any) -> Iterator[TestClient]:
    """A client of the throttled API, with an address of its own."""
    with TestClient(
        throttled_app, raise_server_exceptions=False, client=(_address(), 40000)
    ) as client:
        yield client


def _register(client: TestClient) -> tuple[str, str]:
    """A new account, registered without logging in (a login would count)."""
    email, password = f"user-{uuid.uuid4().hex[:12]}@example.com", "correct horse battery"
    response = client.post("/api/v1/auth/register", json={"email": email, "password": password})
    assert response.status_code == 201
    return email, password


def _login(client: TestClient, email: str, password: str) -> int:
    response = client.post("/api/v1/auth/login", data={"username": email, "password": password})
    if response.status_code == 429:
        assert_problem(response, 429, "too_many_requests")
        assert 1 <= int(response.headers["retry-after"]) <= WINDOW + 1
    return response.status_code


def test_login_is_limited_per_account_then_allowed_again(
    throttled: TestClient, app_client: TestClient
) -> None:
    email, password = _register(app_client)

    attempts = [_login(throttled, email, "wrong password") for _ in range(3)]
    limited = _login(throttled, email, password)

    assert attempts == [401, 401, 401]
    assert limited == 429
    # Not locked: once the window slides, the right password works.
    time.sleep(WINDOW + 0.2)
    assert _login(throttled, email, password) == 200


def test_login_is_limited_per_client_ip_across_accounts(
    throttled: TestClient, app_client: TestClient
) -> None:
    users = [_register(app_client) for _ in range(3)]

    results = [_login(throttled, email, "wrong password") for email, _ in users for _ in range(2)]
    limited = _login(throttled, *users[0])

    assert results == [401] * 6
    assert limited == 429
    # Another address is not affected.
    assert _login(app_client, *users[0]) == 200


@pytest.mark.parametrize("registered", [True, False])
def test_reset_requests_are_limited_alike_for_known_and_unknown_emails(
    throttled: TestClient, app_client: TestClient, registered: bool
) -> None:
    email = _register(app_client)[0] if registered else f"nobody-{uuid.uuid4().hex}@example.com"

    codes = [
        throttled.post("/api/v1/auth/password-reset/request", json={"email": email}).status_code
        for _ in range(3)
    ]

    assert codes == [202, 202, 429]


def test_reset_requests_are_limited_per_client_ip(throttled: TestClient) -> None:
    codes = [
        throttled.post(
            "/api/v1/auth/password-reset/request",
            json={"email": f"nobody-{uuid.uuid4().hex}@example.com"},
        ).status_code
        for _ in range(5)
    ]

    assert codes == [202, 202, 202, 202, 429]


def test_failures_from_elsewhere_do_not_lock_the_owner_out(
    throttled: TestClient, throttled_app: Any, app_client: TestClient
) -> None:
    email, password = _register(app_client)
    attempts = [_login(throttled, email, "wrong password") for _ in range(4)]

    with TestClient(
        throttled_app, raise_server_exceptions=False, client=(_address(), 40000)
    ) as owners_client:
        assert _login(owners_client, email, password) == 200

    assert attempts == [401, 401, 401, 429]


def test_registrations_are_limited_per_client_ip(throttled: TestClient) -> None:
    codes = [
        throttled.post(
            "/api/v1/auth/register",
            json={"email": f"new-{uuid.uuid4().hex}@example.com", "password": "long enough"},
        ).status_code
        for _ in range(3)
    ]

    assert codes == [201, 201, 429]


def test_password_change_guesses_are_limited(throttled: TestClient, app_client: TestClient) -> None:
    email, password = _register(app_client)
    token = app_client.post(
        "/api/v1/auth/login", data={"username": email, "password": password}
    ).json()["access_token"]

    codes = [
        throttled.post(
            "/api/v1/auth/password/change",
            headers={"Authorization": f"Bearer {token}"},
            json={"current_password": f"guess {n}", "new_password": "a new password"},
        ).status_code
        for n in range(4)
    ]

    assert codes == [403, 403, 403, 429]


def test_invitations_to_one_address_are_limited(
    throttled: TestClient, app_client: TestClient
) -> None:
    email, password = _register(app_client)
    token = throttled.post(
        "/api/v1/auth/login", data={"username": email, "password": password}
    ).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    target = f"target-{uuid.uuid4().hex}@example.com"
    codes = []
    for name in ("one", "two", "three"):
        team = throttled.post("/api/v1/tenants", headers=auth, json={"name": name}).json()["id"]
        codes.append(
            throttled.post(
                f"/api/v1/tenants/{team}/members",
                headers=auth,
                json={"email": target, "role": "member"},
            ).status_code
        )

    assert codes == [201, 201, 429]
