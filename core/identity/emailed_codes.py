"""One-time codes sent to an account's email, the proof of the mailbox behind a password
reset and behind confirming a new place to sign in from.

A code is random (`secrets`), kept only as a keyed hash in the key-value store with a
TTL, dies after a few wrong tries, and is consumed atomically, so of two concurrent
confirms exactly one succeeds. Codes sent to one account are bounded across all
addresses: requests from many places must not flood the mailbox or keep replacing the
code its owner is about to type.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from core.identity.accounts import find_active_user, normalize_email
from core.identity.credentials import new_reset_code, reset_code_hash, sha256_hex
from core.identity.mail import queue_email
from core.jobs.submit import Publisher, Submitted
from core.kv import CodeCheck, KeyValueStore
from core.models import User
from core.settings import Settings

# (code, minutes it lives) -> (subject, text)
Message = Callable[[str, int], tuple[str, str]]


def code_key(purpose: str, email: str, scope: str = "") -> str:
    """Where a code for `purpose` is kept; `scope` narrows it (to one client)."""
    key = f"{purpose}:{sha256_hex(email)}"
    return f"{key}:{scope}" if scope else key


def send(
    session: Session,
    publisher: Publisher,
    settings: Settings,
    kv: KeyValueStore,
    *,
    purpose: str,
    email: str,
    message: Message,
    scope: str = "",
) -> Submitted | None:
    """Store a new code and queue its email; None (and nothing done) for an email with
    no active account, or one already sent its share of codes. Callers answer the same
    either way."""
    user = find_active_user(session, email)
    if user is None:
        return None
    sent = kv.hit(
        f"{purpose}:sent:{sha256_hex(user.email)}",
        settings.reset_emails_per_account,
        settings.reset_window_seconds,
    )
    if sent is not None:
        return None
    code = new_reset_code(settings.password_reset_code_digits)
    kv.put_code(
        code_key(purpose, user.email, scope),
        reset_code_hash(settings, user.email, code),
        settings.password_reset_minutes * 60,
    )
    subject, text = message(code, settings.password_reset_minutes)
    return queue_email(
        session, publisher, settings, to=user.email, subject=subject, text=text, user_id=user.id
    )


def redeem(
    session: Session,
    settings: Settings,
    kv: KeyValueStore,
    *,
    purpose: str,
    email: str,
    code: str,
    scope: str = "",
) -> User | None:
    """The account, if `code` is its live code for `purpose` (consumed now); else None."""
    email = normalize_email(email)
    outcome = kv.check_code(
        code_key(purpose, email, scope),
        reset_code_hash(settings, email, code),
        settings.password_reset_max_tries,
    )
    return find_active_user(session, email) if outcome is CodeCheck.ACCEPTED else None
