"""Login sessions: access + refresh tokens, rotation, reuse detection, logout, and
password change ending the other sessions."""

from __future__ import annotations

from fastapi.testclient import TestClient
from jose import jwt

from core.db import Database
from tests.support.factories import User, log_in
from tests.support.problems import assert_problem
from tests.support.stack import Stack


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _refresh(client: TestClient, token: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/refresh", json={"refresh_token": token})
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


def _me_status(client: TestClient, access: str) -> int:
    return client.get("/api/v1/users/me", headers=_bearer(access)).status_code


def test_login_answers_an_access_and_a_refresh_token(app_client: TestClient, user: User) -> None:
    tokens = _login(app_client, user.email, user.password)
    access = jwt.get_unverified_claims(tokens["access_token"])
    refresh = jwt.get_unverified_claims(tokens["refresh_token"])

    assert access["typ"] == "access"
    assert refresh["typ"] == "refresh"
    for claims in (access, refresh):
        assert {"typ", "sub", "exp", "iat", "jti", "iss", "aud", "sid"} <= claims.keys()
    assert access["exp"] - access["iat"] == 15 * 60
    assert access["sid"] == refresh["sid"]
    assert access["sub"] == str(user.id)
    assert tokens["token_type"] == "bearer"
    assert _me_status(app_client, tokens["access_token"]) == 200


def test_refresh_rotates_and_the_new_pair_works(app_client: TestClient, user: User) -> None:
    first = _refresh(app_client, user.refresh_token)
    second = _refresh(app_client, first["refresh_token"])

    assert first["refresh_token"] != user.refresh_token
    assert second["refresh_token"] != first["refresh_token"]
    assert first["token_type"] == "bearer"
    assert _me_status(app_client, second["access_token"]) == 200


def test_reusing_a_rotated_refresh_token_ends_the_whole_session(
    app_client: TestClient, user: User
) -> None:
    rotated = _refresh(app_client, user.refresh_token)

    replay = app_client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})

    assert_problem(replay, 401, "invalid_token")
    # Every token of the family is dead: the one the thief would have, and the
    # legitimate holder's latest ones.
    again = app_client.post(
        "/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}
    )
    assert_problem(again, 401, "invalid_token")
    assert _me_status(app_client, rotated["access_token"]) == 401
    assert _me_status(app_client, user.token) == 401


def test_reuse_ends_only_that_session(
    app_client: TestClient, stack: Stack, db: Database, user: User
) -> None:
    other_login = log_in(stack, user)
    _refresh(app_client, user.refresh_token)
    replay = app_client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})

    assert_problem(replay, 401, "invalid_token")
    assert _me_status(app_client, user.token) == 401
    assert _me_status(app_client, other_login.token) == 200


def test_logout_ends_the_session_and_its_access_tokens(app_client: TestClient, user: User) -> None:
    response = app_client.post("/api/v1/auth/logout", json={"refresh_token": user.refresh_token})

    assert response.status_code == 204
    assert _me_status(app_client, user.token) == 401
    assert_problem(app_client.get("/api/v1/jobs", headers=user.headers), 401, "invalid_token")
    refresh = app_client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert_problem(refresh, 401, "invalid_token")


def test_tokens_are_not_interchangeable(app_client: TestClient, user: User) -> None:
    as_access = app_client.get("/api/v1/users/me", headers=_bearer(user.refresh_token))
    as_refresh = app_client.post("/api/v1/auth/refresh", json={"refresh_token": user.token})

    assert_problem(as_access, 401, "invalid_token")
    assert_problem(as_refresh, 401, "invalid_token")
    assert _me_status(app_client, user.token) == 200


def test_garbage_refresh_tokens_are_401(app_client: TestClient) -> None:
    for token in ("x", "a.b.c", "cvk_" + "A" * 43):
        response = app_client.post("/api/v1/auth/refresh", json={"refresh_token": token})
        assert_problem(response, 401, "invalid_token")
    assert_problem(app_client.post("/api/v1/auth/refresh", json={}), 422, "validation_failed")


def test_password_change_needs_the_current_password_and_ends_other_sessions(
    app_client: TestClient, stack: Stack, db: Database, user: User
) -> None:
    other = log_in(stack, user).token

    wrong = app_client.post(
        "/api/v1/auth/password/change",
        headers=user.headers,
        json={"current_password": "not it at all", "new_password": "a new password"},
    )
    assert_problem(wrong, 403, "wrong_password")
    assert _me_status(app_client, other) == 200

    changed = app_client.post(
        "/api/v1/auth/password/change",
        headers=user.headers,
        json={"current_password": user.password, "new_password": "a new password"},
    )

    assert changed.status_code == 204
    assert _me_status(app_client, user.token) == 200  # the session that changed it
    assert _me_status(app_client, other) == 401
    old = app_client.post(
        "/api/v1/auth/login", data={"username": user.email, "password": user.password}
    )
    assert_problem(old, 401, "invalid_credentials")
    assert _login(app_client, user.email, "a new password")["access_token"]


def _login(client: TestClient, email: str, password: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/login", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body
