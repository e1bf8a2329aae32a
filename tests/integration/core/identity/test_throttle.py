"""Logins, password resets and changes, registrations and invitations are rate limited
(429 with Retry-After) per client IP and per account from that IP; the account itself is
never locked.

A limit counts the attempts inside its window, so a check that N attempts were counted
needs all N inside one window, however long the machine takes over each (a login
verifies an argon2 hash). The windows here are therefore far longer than any test, and
the one test that waits for a window to slide picks a window its own attempts fit in.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from core.jobs.contracts import EMAIL_SEND
from core.models import Job
from tests.support.factories import User, create_api_key, create_user
from tests.support.problems import assert_problem
from tests.support.stack import Stack
from tests.support.worker import WorkerProcess

# Longer than the test timeout: no attempt of a test ever leaves the window.
WINDOW = 600.0
EMAILS_PER_ACCOUNT = 2


def limits(window: float) -> dict[str, Any]:
    return {
        "login_limit_per_account": 3,
        "login_limit_per_ip": 6,
        "login_window_seconds": window,
        "login_limit_per_account_unfamiliar": 1000,
        "reset_limit_per_account": 2,
        "reset_limit_per_ip": 4,
        "reset_window_seconds": window,
        "reset_emails_per_account": EMAILS_PER_ACCOUNT,
        "register_limit_per_ip": 2,
        "register_window_seconds": window,
        "invite_limit_per_ip": 100,
        "invite_limit_per_recipient": 2,
        "invite_window_seconds": window,
        "tenant_limit_per_user": 3,
    }


def _address() -> str:
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"


def _throttled_app(stack: Stack, window: float) -> Any:
    from api.app import create_app

    return create_app(stack.settings.model_copy(update=limits(window)))


@pytest.fixture
def throttled_app(stack: Stack) -> Any:
    """An API with small limits."""
    return _throttled_app(stack, WINDOW)


def _client(app: Any) -> TestClient:
    """A client of the app, with an address of its own."""
    return TestClient(app, raise_server_exceptions=False, client=(_address(), 40000))


@pytest.fixture
def throttled(throttled_app: Any) -> Iterator[TestClient]:
    with _client(throttled_app) as client:
        yield client


def _login(client: TestClient, email: str, password: str, window: float = WINDOW) -> int:
    response = client.post("/api/v1/auth/login", data={"username": email, "password": password})
    if response.status_code == 429:
        assert_problem(response, 429, "too_many_requests")
        assert 1 <= int(response.headers["retry-after"]) <= window + 1
    return response.status_code


def test_login_is_limited_per_account_then_allowed_again(stack: Stack) -> None:
    # The shortest window the four attempts fit in: all inside one window is what makes
    # the fourth one limited, and the window is what the test then waits out.
    for window in (2.0, 8.0, 32.0, 128.0):
        user = create_user(stack)
        with _client(_throttled_app(stack, window)) as throttled:
            started = time.monotonic()
            attempts = [_login(throttled, user.email, "wrong password", window) for _ in range(3)]
            limited = throttled.post(
                "/api/v1/auth/login", data={"username": user.email, "password": user.password}
            )
            if time.monotonic() - started >= window:
                continue

            assert attempts == [401, 401, 401]
            assert_problem(limited, 429, "too_many_requests")
            # Not locked: once the window slides past the first attempt, the right
            # password works.
            time.sleep(int(limited.headers["retry-after"]))
            assert _login(throttled, user.email, user.password, window) == 200
            return
    pytest.fail("four logins never fitted in a window of 128 s")


def test_login_is_limited_per_client_ip_across_accounts(
    throttled: TestClient, app_client: TestClient, stack: Stack
) -> None:
    users = [create_user(stack) for _ in range(3)]

    results = [_login(throttled, u.email, "wrong password") for u in users for _ in range(2)]
    limited = _login(throttled, users[0].email, users[0].password)

    assert results == [401] * 6
    assert limited == 429
    # Another address is not affected.
    assert _login(app_client, users[0].email, users[0].password) == 200


@pytest.mark.parametrize("registered", [True, False])
def test_reset_requests_are_limited_alike_for_known_and_unknown_emails(
    throttled: TestClient, stack: Stack, registered: bool
) -> None:
    email = create_user(stack).email if registered else f"nobody-{uuid.uuid4().hex}@example.com"

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
    throttled: TestClient, throttled_app: Any, user: User
) -> None:
    attempts = [_login(throttled, user.email, "wrong password") for _ in range(4)]

    with _client(throttled_app) as owners_client:
        assert _login(owners_client, user.email, user.password) == 200

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


def test_password_change_guesses_are_limited(throttled: TestClient, user: User) -> None:
    codes = [
        throttled.post(
            "/api/v1/auth/password/change",
            headers=user.headers,
            json={"current_password": f"guess {n}", "new_password": "a new password"},
        ).status_code
        for n in range(4)
    ]

    assert codes == [403, 403, 403, 429]


def _invite(client: TestClient, user: User, team: str, email: str) -> Any:
    return client.post(
        f"/api/v1/tenants/{team}/members",
        headers=user.headers,
        json={"email": email, "role": "member"},
    )


def test_invitations_from_one_tenant_to_one_address_are_limited(
    throttled: TestClient, user: User
) -> None:
    team = throttled.post("/api/v1/tenants", headers=user.headers, json={"name": "T"}).json()["id"]
    target = f"target-{uuid.uuid4().hex}@example.com"
    codes = []
    for _ in range(3):
        invited = _invite(throttled, user, team, target)
        codes.append(invited.status_code)
        if invited.status_code == 201:  # cancelled, so the address may be invited again
            invitation = invited.json()["invitation_id"]
            throttled.delete(
                f"/api/v1/tenants/{team}/invitations/{invitation}", headers=user.headers
            )

    assert codes == [201, 201, 429]


def test_no_one_can_use_up_another_tenants_invitations_of_an_address(
    throttled: TestClient, stack: Stack, user: User
) -> None:
    # Refused adds (409: a personal tenant has only its owner) used to count, across
    # tenants: three of them blocked every invitation of the address for a day.
    target = f"target-{uuid.uuid4().hex}@example.com"
    for _ in range(3):
        refused = _invite(throttled, user, str(user.personal_tenant_id), target)
        assert_problem(refused, 409, "personal_tenant")
    # And sends from one tenant do not count against another's.
    mine = throttled.post("/api/v1/tenants", headers=user.headers, json={"name": "A"}).json()
    assert _invite(throttled, user, mine["id"], target).status_code == 201

    owner = create_user(stack)
    team = throttled.post("/api/v1/tenants", headers=owner.headers, json={"name": "B"}).json()
    assert _invite(throttled, owner, team["id"], target).status_code == 201


def test_addresses_of_one_ipv6_64_count_as_one_client(throttled_app: Any, stack: Stack) -> None:
    user = create_user(stack)
    network = f"2001:db8:{uuid.uuid4().int % 0xFFFF:x}:1::"

    def attempt(address: str, password: str) -> int:
        with TestClient(throttled_app, raise_server_exceptions=False, client=(address, 40000)) as c:
            return _login(c, user.email, password)

    # Three wrong passwords from three addresses of one /64 use up the account's limit
    # for that /64 ...
    wrong = [attempt(f"{network}{n}", "wrong password") for n in (1, 2, 3)]
    assert wrong == [401, 401, 401]
    assert attempt(f"{network}4", user.password) == 429
    # ... and not for the owner, elsewhere.
    elsewhere = f"2001:db8:{uuid.uuid4().int % 0xFFFF:x}:2::1"
    assert attempt(elsewhere, user.password) == 200


def test_reset_emails_to_one_account_are_bounded_across_addresses(
    throttled_app: Any, stack: Stack
) -> None:
    user = create_user(stack)
    answers = []
    for _ in range(5):  # five clients, each well under its own limits
        with _client(throttled_app) as client:
            response = client.post(
                "/api/v1/auth/password-reset/request", json={"email": user.email}
            )
            answers.append(response.status_code)

    assert answers == [202] * 5
    # The emails are queued after each answer (background work the client waits out).
    with stack.db.transaction() as session:
        sent = session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.kind == EMAIL_SEND, Job.input["to"].astext == user.email)
        )
    assert sent == EMAILS_PER_ACCOUNT


def _emailed_code(stack: Stack, email: str, seen: int) -> str:
    mail = stack.smtp.wait_for(
        lambda m: email in m.rcpt_tos and stack.smtp.received.index(m) >= seen, timeout=30
    )
    code = re.search(r"\b(\d{6,8})\b", mail.message.get_content())
    assert code, mail.message.get_content()
    return code.group(1)


def test_guesses_from_many_addresses_slow_down_but_never_lock_the_owner_out(
    stack: Stack, worker: WorkerProcess
) -> None:
    from api.app import create_app

    app = create_app(
        stack.settings.model_copy(
            update={
                "login_limit_per_account": 100,
                "login_limit_per_ip": 100,
                "login_limit_per_account_unfamiliar": 4,
                "login_window_seconds": WINDOW,
            }
        )
    )
    user = create_user(stack)
    key = create_api_key(stack, user.personal_tenant_id, user)

    def client(address: str) -> TestClient:
        return TestClient(app, raise_server_exceptions=False, client=(address, 40000))

    def login(address: str, password: str) -> Any:
        with client(address) as c:
            return c.post("/api/v1/auth/login", data={"username": user.email, "password": password})

    home = _address()
    # The owner, before any attack: one of the four, as home was unfamiliar until then.
    assert login(home, user.password).status_code == 200

    # Guesses from ever new addresses: the account's budget for strangers runs out.
    assert [login(_address(), "guess").status_code for _ in range(3)] == [401, 401, 401]
    assert_problem(login(_address(), "guess"), 429, "client_verification_required")
    # The owner's own client is not slowed down.
    assert login(home, user.password).status_code == 200

    # Somewhere new, the owner is asked to confirm the place by email, not locked out.
    new_place = _address()
    refused = login(new_place, user.password)
    assert_problem(refused, 429, "client_verification_required")
    with client(new_place) as c:
        seen = len(stack.smtp.received)
        asked = c.post("/api/v1/auth/login/verify-client/request", json={"email": user.email})
        assert asked.status_code == 202
        code = _emailed_code(stack, user.email, seen)
        # The code confirms the place that asked for it, nowhere else.
        with client(_address()) as elsewhere:
            stolen = elsewhere.post(
                "/api/v1/auth/login/verify-client/confirm", json={"email": user.email, "code": code}
            )
        assert_problem(stolen, 400, "invalid_verification_code")
        confirmed = c.post(
            "/api/v1/auth/login/verify-client/confirm", json={"email": user.email, "code": code}
        )
        assert confirmed.status_code == 204, confirmed.text
    assert login(new_place, user.password).status_code == 200
    # Nothing else changed: the password, and the API keys.
    with client(home) as c:
        assert c.get("/api/v1/jobs", headers=key.headers).status_code == 200


def test_a_password_reset_forgets_the_places_the_old_password_let_in(
    stack: Stack, worker: WorkerProcess
) -> None:
    from api.app import create_app

    app = create_app(
        stack.settings.model_copy(
            update={"login_limit_per_account_unfamiliar": 1, "login_window_seconds": WINDOW}
        )
    )
    user = create_user(stack)
    thief, owner = _address(), _address()

    def login(address: str, password: str) -> Any:
        with TestClient(app, raise_server_exceptions=False, client=(address, 40000)) as c:
            return c.post("/api/v1/auth/login", data={"username": user.email, "password": password})

    assert login(thief, user.password).status_code == 200  # the thief, with the password
    with TestClient(app, raise_server_exceptions=False, client=(owner, 40000)) as c:
        seen = len(stack.smtp.received)
        c.post("/api/v1/auth/password-reset/request", json={"email": user.email})
        code = _emailed_code(stack, user.email, seen)
        reset = c.post(
            "/api/v1/auth/password-reset/confirm",
            json={"email": user.email, "code": code, "new_password": "the owner's own now"},
        )
        assert reset.status_code == 204

    # The thief's place is a stranger again: its guesses share the strangers' budget.
    assert_problem(login(thief, "a guess"), 429, "client_verification_required")
    assert login(owner, "the owner's own now").status_code == 200
