"""Password hashing (argon2id via libpass), JWTs (HS256 via python-jose), and the
random secrets of API keys and reset codes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache

from jose import jwt
from passlib.context import CryptContext

from core.errors import ConveyorError, ErrorCode
from core.settings import Settings

ALGORITHM = "HS256"

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


class TokenType(StrEnum):
    ACCESS = "access"
    REFRESH = "refresh"


@dataclass(frozen=True)
class TokenClaims:
    token_id: uuid.UUID  # jti
    user_id: uuid.UUID  # sub
    session_id: uuid.UUID  # sid: the login this token belongs to
    expires_at: datetime


def create_token(
    settings: Settings,
    typ: TokenType,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    lifetime: timedelta,
    token_id: uuid.UUID | None = None,
) -> str:
    now = datetime.now(UTC)
    claims = {
        "typ": typ.value,
        "sub": str(user_id),
        "sid": str(session_id),
        "iat": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
        "jti": str(token_id or uuid.uuid4()),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
    }
    return str(jwt.encode(claims, settings.secret_key.get_secret_value(), algorithm=ALGORITHM))


def decode_token(
    settings: Settings, token: str, typ: TokenType, *, now: datetime | None = None
) -> TokenClaims:
    """Verify signature, expiry, issuer, audience and type; any failure is a 401.

    The type check is what keeps a refresh token from being used as an access token.
    A token's signature is checked once (`_verified`), then only its expiry on each
    use: its claims cannot change, and whether its login is live is the database's
    to say, on every request. `now`: the time to check the expiry against."""
    claims = _verified(
        settings.secret_key.get_secret_value(),
        settings.jwt_audience,
        settings.jwt_issuer,
        token,
        typ,
    )
    if claims.expires_at < (now or datetime.now(UTC)):
        raise ConveyorError(ErrorCode.INVALID_TOKEN)
    return claims


# The tokens a process has verified recently: a client polling a job sends the same one
# many times a second, and its signature check and two JSON parses cost more than the
# rest of the token's handling. Only tokens that passed are kept.
VERIFIED_TOKENS = 4096


@lru_cache(maxsize=VERIFIED_TOKENS)
def _verified(secret: str, audience: str, issuer: str, token: str, typ: TokenType) -> TokenClaims:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            options={f"require_{claim}": True for claim in _REQUIRED_CLAIMS},
        )
        if claims.get("typ") != typ.value:
            raise ConveyorError(ErrorCode.INVALID_TOKEN, f"Not an {typ.value} token")
        return TokenClaims(
            token_id=uuid.UUID(claims["jti"]),
            user_id=uuid.UUID(claims["sub"]),
            session_id=uuid.UUID(claims["sid"]),
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        )
    except ConveyorError:
        raise
    except Exception as exc:  # a crafted token can break the parser in any way
        raise ConveyorError(ErrorCode.INVALID_TOKEN) from exc


_REQUIRED_CLAIMS = ("exp", "iat", "sub", "jti", "aud", "iss")


def sha256_hex(value: str) -> str:
    """Digest for high-entropy secrets (refresh tokens, API keys): looked up by hash,
    so a leaked table holds nothing usable, and no slow hash is needed."""
    return hashlib.sha256(value.encode()).hexdigest()


API_KEY_PREFIX = "cvk_"
API_KEY_VISIBLE_CHARS = 12  # "cvk_" and 8 characters of the secret


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def new_invitation_token() -> str:
    return secrets.token_urlsafe(32)


def new_reset_code(digits: int) -> str:
    return f"{secrets.randbelow(10**digits):0{digits}d}"


def reset_code_hash(settings: Settings, email: str, code: str) -> str:
    """Keyed by SECRET_KEY and bound to the email: a copy of the code store is no
    help in guessing codes offline, and a code is only good for its own account."""
    message = f"{email}\n{code}".encode()
    return hmac.new(settings.secret_key.get_secret_value().encode(), message, "sha256").hexdigest()


def upload_signature(settings: Settings, upload_id: uuid.UUID, expires: int) -> str:
    """Authorises one direct upload to local storage until `expires` (epoch seconds),
    the embedded default's stand-in for a presigned S3 URL."""
    message = f"upload\n{upload_id}\n{expires}".encode()
    return hmac.new(settings.secret_key.get_secret_value().encode(), message, "sha256").hexdigest()
