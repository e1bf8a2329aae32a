"""API keys: long-lived secrets for scripts and CI, bound to one tenant and a set of
scopes. Stored as a SHA-256 digest beside a short visible prefix."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from functools import cache

from sqlalchemy import Select, bindparam, func, select, update
from sqlalchemy.orm import Session

from core.errors import ConveyorError, ErrorCode
from core.identity.access import Principal, Scope
from core.identity.credentials import API_KEY_PREFIX, API_KEY_VISIBLE_CHARS, new_api_key, sha256_hex
from core.models import ApiKey, User

# last_used_at is written at most this often per key, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def looks_like_api_key(token: str) -> bool:
    return token.startswith(API_KEY_PREFIX)


def create(
    session: Session, principal: Principal, name: str, scopes: list[Scope]
) -> tuple[ApiKey, str]:
    """The new key and its secret; the secret is never available again."""
    secret = new_api_key()
    key = ApiKey(
        id=uuid.uuid4(),
        tenant_id=principal.tenant_id,
        created_by=principal.user_id,
        name=name,
        prefix=secret[:API_KEY_VISIBLE_CHARS],
        secret_hash=sha256_hex(secret),
        scopes=sorted({scope.value for scope in scopes}),
    )
    session.add(key)
    session.flush()
    session.refresh(key)
    return key, secret


def list_keys(session: Session, tenant_id: uuid.UUID) -> list[ApiKey]:
    return list(
        session.scalars(
            select(ApiKey)
            .where(ApiKey.tenant_id == tenant_id)
            .order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
        )
    )


def revoke(session: Session, tenant_id: uuid.UUID, key_id: uuid.UUID) -> None:
    """Revoke a key of this tenant; revoking twice is not an error."""
    found = session.scalar(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.tenant_id == tenant_id)
        .values(revoked_at=func.coalesce(ApiKey.revoked_at, func.now()))
        .returning(ApiKey.id)
    )
    if found is None:
        raise ConveyorError(ErrorCode.API_KEY_NOT_FOUND)


def revoke_created_by(session: Session, tenant_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """A member who leaves takes their keys with them."""
    session.execute(
        update(ApiKey)
        .where(
            ApiKey.tenant_id == tenant_id,
            ApiKey.created_by == user_id,
            ApiKey.revoked_at.is_(None),
        )
        .values(revoked_at=datetime.now(UTC))
    )


def revoke_all_created_by(session: Session, user_id: uuid.UUID) -> None:
    """Every key the user made, in every tenant: a password reset is how the owner of
    a mailbox takes an account back, and keys made by whoever held it must go too."""
    session.execute(
        update(ApiKey)
        .where(ApiKey.created_by == user_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )


@cache
def _by_secret() -> Select[ApiKey]:
    # Built once: every request made with a key runs it.
    # A key lives no longer than its creator's account.
    return (
        select(ApiKey)
        .join(User, User.id == ApiKey.created_by)
        .where(
            ApiKey.secret_hash == bindparam("secret_hash"),
            ApiKey.revoked_at.is_(None),
            User.is_active.is_(True),
        )
    )


def authenticate(session: Session, secret: str, tenant_id: uuid.UUID | None) -> Principal:
    """The key's principal. Checked on every request, so revocation is immediate."""
    key = session.scalars(_by_secret(), {"secret_hash": sha256_hex(secret)}).one_or_none()
    if key is None:
        raise ConveyorError(ErrorCode.INVALID_TOKEN, "Unknown or revoked API key")
    if tenant_id is not None and tenant_id != key.tenant_id:
        raise ConveyorError(ErrorCode.TENANT_NOT_FOUND)
    now = datetime.now(UTC)
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        key.last_used_at = now
    return Principal(
        tenant_id=key.tenant_id,
        user_id=key.created_by,
        role=None,
        scopes=frozenset(map(Scope, key.scopes)),
        api_key_id=key.id,
    )


def authorize_again(session: Session, principal: Principal) -> Principal:
    """Raise if the principal's key has been revoked since it was accepted."""
    live = session.scalar(
        select(ApiKey.id).where(
            ApiKey.id == principal.api_key_id,
            ApiKey.tenant_id == principal.tenant_id,
            ApiKey.revoked_at.is_(None),
        )
    )
    if live is None:
        raise ConveyorError(ErrorCode.INVALID_TOKEN, "Unknown or revoked API key")
    return principal
