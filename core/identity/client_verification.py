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
from core.identity import emailed_codes
from core.identity.mail import client_code_email
from core.identity.throttle import client_key, remember_client
from core.jobs.submit import Publisher, Submitted
from core.kv import KeyValueStore
from core.settings import Settings

PURPOSE = "verify-client"


def request_code(
    session: Session,
    publisher: Publisher,
    settings: Settings,
    kv: KeyValueStore,
    email: str,
    client_ip: str,
) -> Submitted | None:
    """Store a code for this client and queue its email (see `emailed_codes.send`)."""
    return emailed_codes.send(
        session,
        publisher,
        settings,
        kv,
        purpose=PURPOSE,
        email=email,
        message=client_code_email,
        # The client is part of the key: the code confirms the place that asked for it.
        scope=client_key(client_ip),
    )


def confirm(
    session: Session,
    settings: Settings,
    kv: KeyValueStore,
    email: str,
    code: str,
    client_ip: str,
) -> None:
    user = emailed_codes.redeem(
        session, settings, kv, purpose=PURPOSE, email=email, code=code, scope=client_key(client_ip)
    )
    if user is None:
        raise ConveyorError(ErrorCode.INVALID_VERIFICATION_CODE)
    remember_client(kv, settings, client_ip, user.email, user.password_hash)
