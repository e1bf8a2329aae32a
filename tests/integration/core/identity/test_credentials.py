"""Access tokens as the API checks them: only a well-signed, unexpired access token of a
live session and user is let in; everything else is a 401."""

from __future__ import annotations

import base64
import json
import uuid

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


def test_token_of_a_vanished_user_is_401(app_client: TestClient, stack: Stack) -> None:
    token = access_token(stack.settings, uuid.uuid4())
    response = app_client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {token}"})
    assert_problem(response, 401, "invalid_token")
