"""Accounts as a client meets them: registering, logging in, and what is checked on the
way (emails lower-cased, passwords of any characters, hashes renewed)."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from core.db import Database
from tests.support.factories import User, new_email
from tests.support.problems import assert_problem


def test_a_valid_email_longer_than_a_tenant_name_registers(app_client: TestClient) -> None:
    email = "a" * 64 + "@" + "c" * 63 + "." + "d" * 63 + ".example.com"
    assert len(email) > 200
    response = app_client.post(
        "/api/v1/auth/register", json={"email": email, "password": "long enough"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["email"] == email


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


def _login(client: TestClient, email: str, password: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/login", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


def test_passwords_of_256_and_multibyte_characters_round_trip(app_client: TestClient) -> None:
    for password in ("p" * 256, "пароль-密码-🔑" * 4):
        email = new_email()
        registered = app_client.post(
            "/api/v1/auth/register", json={"email": email, "password": password}
        )
        assert registered.status_code == 201, registered.text
        assert _login(app_client, email, password)["access_token"]
        near_miss = app_client.post(
            "/api/v1/auth/login", data={"username": email, "password": password[:-1]}
        )
        assert_problem(near_miss, 401, "invalid_credentials")
    too_long = app_client.post(
        "/api/v1/auth/register", json={"email": "long@example.com", "password": "p" * 257}
    )
    assert_problem(too_long, 422, "validation_failed")
    too_short = app_client.post(
        "/api/v1/auth/register", json={"email": "short@example.com", "password": "1234567"}
    )
    assert_problem(too_short, 422, "validation_failed")


def test_email_is_lower_cased_and_validated(app_client: TestClient) -> None:
    response = app_client.post(
        "/api/v1/auth/register",
        json={"email": "Mixed.Case@Example.COM", "password": "long enough"},
    )
    assert response.status_code == 201
    assert response.json()["email"] == "mixed.case@example.com"
    login = app_client.post(
        "/api/v1/auth/login",
        data={"username": "MIXED.case@example.com", "password": "long enough"},
    )
    assert login.status_code == 200
    bad = app_client.post(
        "/api/v1/auth/register", json={"email": "not-an-email", "password": "long enough"}
    )
    assert_problem(bad, 422, "validation_failed")


def test_login_rehashes_a_password_stored_with_older_parameters(
    app_client: TestClient, db: Database, user: User
) -> None:
    from passlib.hash import argon2
    from sqlalchemy import text

    weak = argon2.using(time_cost=1, memory_cost=1024, parallelism=1).hash(user.password)
    query = text("SELECT password_hash FROM users WHERE email = :email")
    with db.transaction() as session:
        session.execute(
            text("UPDATE users SET password_hash = :hash WHERE email = :email"),
            {"hash": weak, "email": user.email},
        )

    assert _login(app_client, user.email, user.password)["access_token"]

    with db.transaction() as session:
        stored = session.execute(query, {"email": user.email}).scalar_one()
    assert stored != weak
    assert stored.startswith("$argon2id$")
    assert "m=1024," not in stored
    assert argon2.verify(user.password, stored)


def test_concurrent_registrations_of_one_email(app_client: TestClient) -> None:
    from concurrent.futures import ThreadPoolExecutor

    email = f"race-{uuid.uuid4().hex[:8]}@example.com"

    def register(_: int) -> int:
        return app_client.post(
            "/api/v1/auth/register", json={"email": email, "password": "long enough"}
        ).status_code

    with ThreadPoolExecutor(4) as pool:
        statuses = sorted(pool.map(register, range(4)))

    assert statuses == [201, 409, 409, 409]
