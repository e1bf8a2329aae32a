"""Login sessions: each login gets a short-lived access token and a refresh token
that is rotated on every use.

A session is the family of refresh tokens descended from one login. Presenting a
refresh token that was already exchanged means two parties hold it (it leaked), so the
whole session ends, and with it every access token that names it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from core.errors import ConveyorError, ErrorCode
from core.identity.credentials import TokenType, create_token, decode_token, sha256_hex
from core.models import AuthSession, RefreshToken, User
from core.settings import Settings


class RefreshTokenReused(ConveyorError):
    """Raised after the session was revoked; the caller must commit that revocation."""

    def __init__(self) -> None:
        super().__init__(
            ErrorCode.INVALID_TOKEN,
            "This refresh token was already used; the session has been ended",
        )


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int  # seconds the access token lives


def start(session: Session, settings: Settings, user_id: uuid.UUID) -> TokenPair:
    auth_session = AuthSession(id=uuid.uuid4(), user_id=user_id)
    session.add(auth_session)
    session.flush()
    return _issue(session, settings, user_id, auth_session.id)


def rotate(session: Session, settings: Settings, refresh_token: str) -> TokenPair:
    claims = decode_token(settings, refresh_token, TokenType.REFRESH)
    row = session.execute(
        select(RefreshToken, AuthSession, User.is_active)
        .join(AuthSession, AuthSession.id == RefreshToken.session_id)
        .join(User, User.id == AuthSession.user_id)
        .where(
            RefreshToken.id == claims.token_id,
            RefreshToken.token_hash == sha256_hex(refresh_token),
            AuthSession.user_id == claims.user_id,
        )
        # Concurrent uses of one token queue here: exactly one of them wins.
        .with_for_update(of=RefreshToken)
    ).one_or_none()
    if row is None:
        raise ConveyorError(ErrorCode.INVALID_TOKEN)
    token, auth_session, user_active = row
    if auth_session.revoked_at is not None or not user_active:
        raise ConveyorError(ErrorCode.INVALID_TOKEN, "The session has ended")
    if token.used_at is not None:
        _revoke(session, AuthSession.id == auth_session.id, "refresh_reuse")
        raise RefreshTokenReused
    token.used_at = datetime.now(UTC)
    return _issue(session, settings, claims.user_id, auth_session.id)


def end(session: Session, settings: Settings, refresh_token: str) -> None:
    """Log out: end the session the refresh token belongs to."""
    claims = decode_token(settings, refresh_token, TokenType.REFRESH)
    _revoke(
        session,
        (AuthSession.id == claims.session_id) & (AuthSession.user_id == claims.user_id),
        "logout",
    )


def end_all(
    session: Session, user_id: uuid.UUID, reason: str, keep: uuid.UUID | None = None
) -> None:
    """End every session of the user (but `keep`, the caller's own, if given)."""
    condition = AuthSession.user_id == user_id
    if keep is not None:
        condition = condition & (AuthSession.id != keep)
    _revoke(session, condition, reason)


def _issue(
    session: Session, settings: Settings, user_id: uuid.UUID, session_id: uuid.UUID
) -> TokenPair:
    access_lifetime = timedelta(minutes=settings.access_token_minutes)
    refresh_lifetime = timedelta(days=settings.refresh_token_days)
    token_id = uuid.uuid4()
    refresh = create_token(
        settings, TokenType.REFRESH, user_id, session_id, refresh_lifetime, token_id
    )
    session.add(
        RefreshToken(
            id=token_id,
            session_id=session_id,
            token_hash=sha256_hex(refresh),
            expires_at=datetime.now(UTC) + refresh_lifetime,
        )
    )
    session.flush()
    access = create_token(settings, TokenType.ACCESS, user_id, session_id, access_lifetime)
    return TokenPair(access, refresh, int(access_lifetime.total_seconds()))


def _revoke(session: Session, condition: ColumnElement[bool], reason: str) -> None:
    session.execute(
        update(AuthSession)
        .where(condition, AuthSession.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC), revoked_reason=reason)
    )
