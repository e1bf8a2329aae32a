"""Confirming a new place to sign in from, by a code sent to the account's email.

When guesses from many addresses have spent an account's budget for unfamiliar clients
(`throttle.check_login`), its owner signing in from somewhere new is asked for this code
instead of being locked out: the code proves the mailbox, and the client that asked for
it is remembered as the owner's. Nothing else changes: not the password, not the
sessions, not the API keys.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.errors import ConveyorError, ErrorCode
from core.identity.accounts import find_active_user, normalize_email
from core.identity.credentials import new_reset_code, reset_code_hash, sha256_hex
from core.identity.mail import client_code_email, queue_email
from core.identity.throttle import client_key, remember_client
from core.jobs.submit import Publisher, Submitted
from core.kv import CodeCheck, KeyValueStore
from core.settings import Settings


def _code_key(email: str, client_ip: str) -> str:
    # The client is part of the key: the code confirms the place that asked for it.
    return f"verify-client:{sha256_hex(email)}:{client_key(client_ip)}"


def request_code(
    session: Session,
    publisher: Publisher,
    settings: Settings,
    kv: KeyValueStore,
    email: str,
    client_ip: str,
) -> Submitted | None:
    """Store a code for this client and queue its email; None (nothing done) for an
    address with no active account, or one already sent its share of codes."""
    user = find_active_user(session, email)
    if user is None:
        return None
    sent = kv.hit(
        f"verify-client:sent:{sha256_hex(user.email)}",
        settings.reset_emails_per_account,
        settings.reset_window_seconds,
    )
    if sent is not None:
        return None
    code = new_reset_code(settings.password_reset_code_digits)
    kv.put_code(
        _code_key(user.email, client_ip),
        reset_code_hash(settings, user.email, code),
        settings.password_reset_minutes * 60,
    )
    subject, text = client_code_email(code, settings.password_reset_minutes)
    return queue_email(
        session, publisher, settings, to=user.email, subject=subject, text=text, user_id=user.id
    )


def confirm(
    session: Session,
    settings: Settings,
    kv: KeyValueStore,
    email: str,
    code: str,
    client_ip: str,
) -> None:
    email = normalize_email(email)
    outcome = kv.check_code(
        _code_key(email, client_ip),
        reset_code_hash(settings, email, code),
        settings.password_reset_max_tries,
    )
    user = find_active_user(session, email) if outcome is CodeCheck.ACCEPTED else None
    if user is None:
        raise ConveyorError(ErrorCode.INVALID_VERIFICATION_CODE)
    remember_client(kv, settings, client_ip, email, user.password_hash)
