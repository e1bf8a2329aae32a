"""Password hashing (argon2id via libpass) and JWT access tokens (HS256 via python-jose)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from jose import JWTError, jwt
from passlib.context import CryptContext

from core.errors import ConveyorError, ErrorCode
from core.settings import Settings

ALGORITHM = "HS256"
ACCESS = "access"

_passwords = CryptContext(schemes=["argon2"], deprecated="auto")

# Verified when the email is unknown, so a login takes as long either way.
_DUMMY_HASH = _passwords.hash("conveyor-timing-equaliser")


def hash_password(password: str) -> str:
    hashed: str = _passwords.hash(password)
    return hashed


def verify_password(password: str, password_hash: str | None) -> tuple[bool, str | None]:
    """Check a password; the second value is a fresh hash when parameters changed."""
    if password_hash is None:
        _passwords.verify(password, _DUMMY_HASH)
        return False, None
    ok, new_hash = _passwords.verify_and_update(password, password_hash)
    return bool(ok), new_hash


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    expires_at: datetime


def create_access_token(settings: Settings, user_id: uuid.UUID) -> tuple[str, int]:
    """A signed access token and its lifetime in seconds."""
    now = datetime.now(UTC)
    lifetime = timedelta(minutes=settings.access_token_minutes)
    claims = {
        "typ": ACCESS,
        "sub": str(user_id),
        "iat": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
        "jti": uuid.uuid4().hex,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
    }
    token = jwt.encode(claims, settings.secret_key.get_secret_value(), algorithm=ALGORITHM)
    return token, int(lifetime.total_seconds())


def decode_access_token(settings: Settings, token: str) -> AccessClaims:
    try:
        claims = jwt.decode(
            token,
            settings.secret_key.get_secret_value(),
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={
                "require_exp": True,
                "require_iat": True,
                "require_sub": True,
                "require_jti": True,
                "require_aud": True,
                "require_iss": True,
            },
        )
        if claims.get("typ") != ACCESS:
            raise ConveyorError(ErrorCode.INVALID_TOKEN, "Not an access token")
        return AccessClaims(
            user_id=uuid.UUID(claims["sub"]),
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        )
    except (JWTError, ValueError, KeyError, TypeError) as exc:
        raise ConveyorError(ErrorCode.INVALID_TOKEN) from exc
