"""Every error is problem+json with a stable code, and every response has a request id."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from jose import jwt

from tests.support.factories import User
from tests.support.problems import assert_problem
from tests.support.stack import Stack
from tests.support.tokens import access_token


def _b64(data: dict[str, object]) -> str:
    return _b64_raw(json.dumps(data).encode())


def _b64_raw(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_health_and_root(app_client: TestClient) -> None:
    assert app_client.get("/healthz").json() == {"status": "ok"}
    assert app_client.get("/").json()["name"] == "conveyor"
    ready = app_client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "database": "ok",
        "broker": "ok",
        "kv_store": "ok",
        "storage": "ok",
    }


def test_request_id_is_echoed_or_made(app_client: TestClient) -> None:
    given = app_client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    made = app_client.get("/healthz")

    assert given.headers["x-request-id"] == "abc-123"
    assert len(made.headers["x-request-id"]) == 32


def test_unknown_route_and_method(app_client: TestClient) -> None:
    assert_problem(app_client.get("/api/v1/nothing-here"), 404, "not_found")
    assert_problem(app_client.delete("/healthz"), 405, "method_not_allowed")


def test_missing_and_bad_tokens_are_401(app_client: TestClient, stack: Stack, user: User) -> None:
    key = stack.settings.secret_key.get_secret_value()
    real = jwt.get_unverified_claims(user.token)
    base = {
        "sub": real["sub"],
        "sid": real["sid"],
        "typ": "access",
        "iat": 1,
        "jti": str(uuid.uuid4()),
        "iss": "conveyor",
        "aud": "conveyor-api",
        "exp": 4_000_000_000,
    }
    tokens = {
        "garbage": "not-a-jwt",
        "wrong key": jwt.encode(base, "another-key-another-key-another-key"),
        "expired": jwt.encode({**base, "exp": 1}, key),
        "wrong audience": jwt.encode({**base, "aud": "someone-else"}, key),
        "wrong type": jwt.encode({**base, "typ": "refresh"}, key),
        "no subject": jwt.encode({k: v for k, v in base.items() if k != "sub"}, key),
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(base)}.",
        "other algorithm": jwt.encode(base, key, algorithm="HS512"),
        "no expiry": jwt.encode({k: v for k, v in base.items() if k != "exp"}, key),
        "no issuer": jwt.encode({k: v for k, v in base.items() if k != "iss"}, key),
        "wrong issuer": jwt.encode({**base, "iss": "elsewhere"}, key),
        "no session": jwt.encode({k: v for k, v in base.items() if k != "sid"}, key),
        "another session": jwt.encode({**base, "sid": str(uuid.uuid4())}, key),
        "reset type": jwt.encode({**base, "typ": "reset"}, key),
        "no type": jwt.encode({k: v for k, v in base.items() if k != "typ"}, key),
        "unknown api key": "cvk_" + "A" * 43,
        "nested header": f"{_b64_raw(b'[' * 1100)}.{_b64(base)}.x",
        "oversized": "x" * 5000,
    }
    # The control: the same claims, well signed, are accepted.
    control = jwt.encode(base, key)
    assert (
        app_client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {control}"}).status_code
        == 200
    )
    assert_problem(app_client.get("/api/v1/jobs"), 401, "not_authenticated")
    for name, token in tokens.items():
        response = app_client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {token}"})
        assert_problem(response, 401, "invalid_token")
        assert response.headers["www-authenticate"] == "Bearer", name


def test_a_valid_email_longer_than_a_tenant_name_registers(app_client: TestClient) -> None:
    email = "a" * 64 + "@" + "c" * 63 + "." + "d" * 63 + ".example.com"
    assert len(email) > 200
    response = app_client.post(
        "/api/v1/auth/register", json={"email": email, "password": "long enough"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["email"] == email


def test_token_of_a_vanished_user_is_401(app_client: TestClient, stack: Stack) -> None:
    token = access_token(stack.settings, uuid.uuid4())
    response = app_client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {token}"})
    assert_problem(response, 401, "invalid_token")


def test_oversized_body_is_413(app_client: TestClient, user: User, stack: Stack) -> None:
    big = "x" * (stack.settings.max_request_bytes + 1)
    response = app_client.post(
        "/api/v1/jobs",
        headers=user.headers,
        json={"kind": "diagnostics.echo", "input": {"big": big}},
    )
    assert_problem(response, 413, "payload_too_large")


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


def test_register_and_login_errors(app_client: TestClient, user: User) -> None:
    dup = app_client.post(
        "/api/v1/auth/register", json={"email": user.email.upper(), "password": "whatever123"}
    )
    assert_problem(dup, 409, "email_taken")
    short = app_client.post(
        "/api/v1/auth/register", json={"email": "new@example.com", "password": "short"}
    )
    assert_problem(short, 422, "validation_failed")
    bad_email = app_client.post(
        "/api/v1/auth/register", json={"email": "not-an-email", "password": "long enough"}
    )
    assert_problem(bad_email, 422, "validation_failed")
    wrong = app_client.post(
        "/api/v1/auth/login", data={"username": user.email, "password": "wrong password"}
    )
    assert_problem(wrong, 401, "invalid_credentials")
    nobody = app_client.post(
        "/api/v1/auth/login", data={"username": "nobody@example.com", "password": "x" * 10}
    )
    assert_problem(nobody, 401, "invalid_credentials")


def test_me_shows_the_personal_tenant(app_client: TestClient, user: User) -> None:
    me = app_client.get("/api/v1/users/me", headers=user.headers).json()

    assert me["email"] == user.email
    assert me["tenants"] == [
        {"id": me["personal_tenant_id"], "name": user.email, "personal": True, "role": "owner"}
    ]


def test_long_and_multibyte_passwords_round_trip(app_client: TestClient) -> None:
    for password in ["p" * 256, "пароль-密码-🔑🔑"]:
        email = f"pw-{len(password)}-{abs(hash(password))}@example.com"
        app_client.post("/api/v1/auth/register", json={"email": email, "password": password})
        ok = app_client.post("/api/v1/auth/login", data={"username": email, "password": password})
        assert ok.status_code == 200
        near = app_client.post(
            "/api/v1/auth/login", data={"username": email, "password": password[:-1]}
        )
        assert near.status_code == 401


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
