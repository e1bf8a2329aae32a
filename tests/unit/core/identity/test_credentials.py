from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from pydantic import SecretStr

from core.errors import ConveyorError
from core.identity.credentials import (
    TokenType,
    create_token,
    decode_token,
    hash_password,
    new_api_key,
    new_reset_code,
    reset_code_hash,
    verify_password,
)
from core.settings import Settings

SETTINGS = Settings(_env_file=None, environment="test", secret_key="a" * 40)


def test_password_hash_is_argon2id_and_verifies() -> None:
    hashed = hash_password("correct horse")
    assert hashed.startswith("$argon2id$")
    assert verify_password("correct horse", hashed)[0]
    assert not verify_password("correct horsE", hashed)[0]


def test_long_and_multibyte_passwords_are_not_truncated() -> None:
    long = "p" * 255 + "a"
    hashed = hash_password(long)
    assert verify_password(long, hashed)[0]
    assert not verify_password("p" * 255 + "b", hashed)[0]
    emoji = "🔑ñ密码" * 20
    assert verify_password(emoji, hash_password(emoji))[0]


def test_token_round_trip_and_key_binding() -> None:
    user_id, session_id = uuid.uuid4(), uuid.uuid4()
    token = create_token(SETTINGS, TokenType.ACCESS, user_id, session_id, timedelta(minutes=1))
    claims = decode_token(SETTINGS, token, TokenType.ACCESS)
    assert (claims.user_id, claims.session_id) == (user_id, session_id)
    other = SETTINGS.model_copy(update={"secret_key": SecretStr("b" * 40)})
    with pytest.raises(ConveyorError):
        decode_token(other, token, TokenType.ACCESS)


def test_a_token_of_one_type_is_never_accepted_as_another() -> None:
    refresh = create_token(
        SETTINGS, TokenType.REFRESH, uuid.uuid4(), uuid.uuid4(), timedelta(minutes=1)
    )
    with pytest.raises(ConveyorError) as caught:
        decode_token(SETTINGS, refresh, TokenType.ACCESS)
    assert caught.value.error.code == "invalid_token"


def test_expired_token_is_refused() -> None:
    token = create_token(
        SETTINGS, TokenType.ACCESS, uuid.uuid4(), uuid.uuid4(), timedelta(seconds=-5)
    )
    with pytest.raises(ConveyorError):
        decode_token(SETTINGS, token, TokenType.ACCESS)


def test_a_token_verified_before_is_refused_once_it_has_expired() -> None:
    token = create_token(
        SETTINGS, TokenType.ACCESS, uuid.uuid4(), uuid.uuid4(), timedelta(minutes=5)
    )
    claims = decode_token(SETTINGS, token, TokenType.ACCESS)  # verified, and kept
    assert decode_token(SETTINGS, token, TokenType.ACCESS, now=claims.expires_at) == claims
    with pytest.raises(ConveyorError) as caught:
        decode_token(
            SETTINGS, token, TokenType.ACCESS, now=claims.expires_at + timedelta(seconds=1)
        )
    assert caught.value.error.code == "invalid_token"
    # Kept as an access token under this key only.
    with pytest.raises(ConveyorError):
        decode_token(SETTINGS, token, TokenType.REFRESH)
    other = SETTINGS.model_copy(update={"secret_key": SecretStr("b" * 40)})
    with pytest.raises(ConveyorError):
        decode_token(other, token, TokenType.ACCESS)


def test_api_keys_and_reset_codes_are_random_and_well_formed() -> None:
    keys = {new_api_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(k.startswith("cvk_") and len(k) == 4 + 43 for k in keys)
    codes = [new_reset_code(8) for _ in range(200)]
    assert all(len(c) == 8 and c.isdigit() for c in codes)
    assert len(set(codes)) > 190


def test_reset_code_hash_is_keyed_and_bound_to_the_email() -> None:
    digest = reset_code_hash(SETTINGS, "a@example.com", "12345678")
    assert digest != reset_code_hash(SETTINGS, "b@example.com", "12345678")
    other = SETTINGS.model_copy(update={"secret_key": SecretStr("b" * 40)})
    assert digest != reset_code_hash(other, "a@example.com", "12345678")
