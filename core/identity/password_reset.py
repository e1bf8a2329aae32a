"""Password reset by a code sent to the account's email (`emailed_codes`). A confirmed
reset ends every session of the account and revokes its API keys."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.orm import Session

from core.errors import ConveyorError, ErrorCode
from core.identity import api_keys, emailed_codes, sessions
from core.identity.accounts import normalize_email
from core.identity.credentials import hash_password
from core.identity.mail import reset_code_email
from core.jobs.submit import Publisher, Submitted
from core.kv import KeyValueStore
from core.models import Invitation, User
from core.settings import Settings

PURPOSE = "reset"


def request_code(
    session: Session, publisher: Publisher, settings: Settings, kv: KeyValueStore, email: str
) -> Submitted | None:
    """Store a new code and queue its email (see `emailed_codes.send`)."""
    return emailed_codes.send(
        session, publisher, settings, kv, purpose=PURPOSE, email=email, message=reset_code_email
    )


def confirm(
    session: Session,
    settings: Settings,
    kv: KeyValueStore,
    email: str,
    code: str,
    new_password: str,
) -> User:
    user = emailed_codes.redeem(session, settings, kv, purpose=PURPOSE, email=email, code=code)
    if user is None:
        raise ConveyorError(ErrorCode.INVALID_RESET_CODE)
    user.password_hash = hash_password(new_password)
    # A reset proves the mailbox, not the account's history: whoever else held the
    # account loses every way in, sessions and API keys alike (a voluntary password
    # change keeps the keys).
    sessions.end_all(session, user.id, "password_reset")
    api_keys.revoke_all_created_by(session, user.id)
    # Nor may anyone join a team on an invitation sent in the account's name.
    session.execute(delete(Invitation).where(Invitation.invited_by == user.id))
    return user


def discard_code(kv: KeyValueStore, email: str) -> None:
    """A password changed with the current one makes a pending reset code pointless."""
    kv.discard_code(emailed_codes.code_key(PURPOSE, normalize_email(email)))
