"""Password reset by a code sent to the account's email.

The code is random (`secrets`), kept only as a keyed hash in the key-value store with a
TTL, dies after a few wrong tries, and is consumed atomically, so of two concurrent
confirms exactly one succeeds. A confirmed reset ends every session of the account.
"""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.orm import Session

from core.errors import ConveyorError, ErrorCode
from core.identity import api_keys, sessions
from core.identity.accounts import find_active_user, normalize_email
from core.identity.credentials import hash_password, new_reset_code, reset_code_hash, sha256_hex
from core.identity.mail import queue_email, reset_code_email
from core.jobs.submit import Publisher, Submitted
from core.kv import CodeCheck, KeyValueStore
from core.models import Invitation, User
from core.settings import Settings


def _code_key(email: str) -> str:
    return f"reset:{sha256_hex(email)}"


def request_code(
    session: Session, publisher: Publisher, settings: Settings, kv: KeyValueStore, email: str
) -> Submitted | None:
    """Store a new code and queue its email; None (and nothing done) for an email with
    no active account. Callers answer the same either way."""
    user = find_active_user(session, email)
    if user is None:
        return None
    sent = kv.hit(
        f"reset:sent:{sha256_hex(user.email)}",
        settings.reset_emails_per_account,
        settings.reset_window_seconds,
    )
    if sent is not None:
        # Requests from many addresses must not flood the mailbox or keep replacing
        # the code its owner is about to type.
        return None
    code = new_reset_code(settings.password_reset_code_digits)
    kv.put_code(
        _code_key(user.email),
        reset_code_hash(settings, user.email, code),
        settings.password_reset_minutes * 60,
    )
    subject, text = reset_code_email(code, settings.password_reset_minutes)
    return queue_email(
        session, publisher, settings, to=user.email, subject=subject, text=text, user_id=user.id
    )


def confirm(
    session: Session,
    settings: Settings,
    kv: KeyValueStore,
    email: str,
    code: str,
    new_password: str,
) -> User:
    email = normalize_email(email)
    outcome = kv.check_code(
        _code_key(email),
        reset_code_hash(settings, email, code),
        settings.password_reset_max_tries,
    )
    user = find_active_user(session, email) if outcome is CodeCheck.ACCEPTED else None
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
    kv.discard_code(_code_key(normalize_email(email)))
