from __future__ import annotations

import uuid

import pytest

from core.errors import ConveyorError
from core.security import create_access_token, decode_access_token, hash_password, verify_password
from core.settings import Settings


def test_password_hash_is_argon2id_and_verifies() -> None:
    hashed = hash_password("correct horse")
    assert hashed.startswith("$argon2id$")
    assert verify_password("correct horse", hashed)[0]
    assert not verify_password("correct horsE", hashed)[0]


def test_access_token_round_trip_and_key_binding() -> None:
    settings = Settings(_env_file=None, environment="test", secret_key="a" * 40)
    user_id = uuid.uuid4()
    token, lifetime = create_access_token(settings, user_id)
    assert lifetime == 15 * 60
    assert decode_access_token(settings, token).user_id == user_id
    other = settings.model_copy(update={"secret_key": settings.secret_key.__class__("b" * 40)})
    with pytest.raises(ConveyorError):
        decode_access_token(other, token)
