"""Account email, queued as `email.send` system jobs so a slow or failing mail server
never holds up a request, and a failed send is retried."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from core.jobs.contracts import EMAIL_SEND
from core.jobs.submit import Publisher, Submitted, submit
from core.settings import Settings


def queue_email(
    session: Session,
    publisher: Publisher,
    settings: Settings,
    *,
    to: str,
    subject: str,
    text: str,
    user_id: uuid.UUID | None = None,
) -> Submitted:
    return submit(
        session,
        publisher,
        tenant_id=None,  # a system job: no tenant can list or read it
        user_id=user_id,
        kind_name=EMAIL_SEND,
        raw_input={"to": to, "subject": subject, "text": text},
        settings=settings,
    )


def reset_code_email(code: str, minutes: int) -> tuple[str, str]:
    subject = "Your Conveyor password reset code"
    text = (
        f"Your password reset code is {code}\n\n"
        f"It works once, for {minutes} minutes. Resetting your password signs out every "
        "session and revokes every API key you created: make new keys afterwards.\n\n"
        "If you did not ask to reset your password, ignore this message: your password "
        "has not changed.\n"
    )
    return subject, text


def client_code_email(code: str, minutes: int) -> tuple[str, str]:
    subject = "Your Conveyor sign-in code"
    text = (
        f"Your code to sign in from a new place is {code}\n\n"
        f"It works once, for {minutes} minutes, from the place that asked for it. Many "
        "sign-ins to your account were tried from new places, so new places need this "
        "code; places you signed in from before do not.\n\n"
        "If you did not ask for it, ignore this message, and consider changing your "
        "password.\n"
    )
    return subject, text


def invitation_email(tenant_name: str, inviter: str, role: str, token: str) -> tuple[str, str]:
    """The subject holds no text a user chose; the body quotes the team's name as a
    value, so it cannot pass for Conveyor's own words."""
    subject = "You are invited to a team on Conveyor"
    text = (
        f"{inviter} invited you to join the team named {tenant_name!r} on Conveyor as "
        f"{role}.\n\n"
        f"Your invitation token is {token}\n\n"
        "Register with this email address and the token (POST /api/v1/auth/register "
        'with "invitation_token"), or, if you have an account, accept it with '
        "POST /api/v1/invitations/accept. The token works once. If you did not expect "
        "this, ignore this message.\n"
    )
    return subject, text
