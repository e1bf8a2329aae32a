"""email.send: one plain-text account email (a reset code, an invitation).

Sent over SMTP when SMTP_HOST is set. Without it, dev and test write the message to
the outbox folder and log it, so a local user can read a reset code with no mail
server; production refuses instead, and logs nothing of the body.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import uuid
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from pathlib import Path

from email_validator import EmailNotValidError, validate_email

from core.jobs.contracts import EMAIL_SEND, EmailInput, EmailOutput
from core.settings import Settings
from worker.context import JobContext
from worker.errors import PermanentJobError
from worker.jobs.email_send import smtp

KIND = EMAIL_SEND

log = logging.getLogger("conveyor.worker")

_DOMAIN = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")


def handle(ctx: JobContext, data: EmailInput) -> EmailOutput:
    settings = ctx.settings
    message = build_message(settings, ctx.job_id, data)
    message_id = str(message["Message-ID"])
    if settings.smtp_host:
        smtp.send(settings, settings.smtp_host, message)
        log.info("job %s: email to %s sent over SMTP as %s", ctx.job_id, data.to, message_id)
        return EmailOutput(message_id=message_id, transport="smtp")
    if not settings.is_dev:
        raise PermanentJobError("SMTP is not configured: set SMTP_HOST", type="smtp_not_configured")
    path = write_outbox(settings.outbox_dir, ctx.job_id, message)
    log.info(
        "email to %s, subject %r, not sent (no SMTP_HOST) but written to %s:\n%s",
        data.to,
        data.subject,
        path,
        data.text,
    )
    return EmailOutput(message_id=message_id, transport="outbox")


def build_message(settings: Settings, job_id: uuid.UUID, data: EmailInput) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.email_from
    message["To"] = _ascii_address(data.to)
    message["Subject"] = data.subject
    message["Date"] = formatdate(usegmt=True)
    # From the job id, so every attempt of one job sends the same message: a copy
    # delivered twice (accepted, then the connection lost) is recognisably a duplicate.
    message["Message-ID"] = f"<{job_id}@{_sender_domain(settings.email_from)}>"
    message.set_content(data.text)
    return message


def _ascii_address(address: str) -> str:
    """The address with its domain in punycode when the local part allows: a server
    without SMTPUTF8 can then still take it."""
    try:
        ascii_email = validate_email(address, check_deliverability=False).ascii_email
    except EmailNotValidError:
        return address
    return ascii_email or address


def _sender_domain(email_from: str) -> str:
    domain = parseaddr(email_from)[1].rpartition("@")[2]
    return domain if _DOMAIN.fullmatch(domain) else "conveyor"


def write_outbox(folder: Path, job_id: uuid.UUID, message: EmailMessage) -> Path:
    """Write `<job_id>.eml` whole or not at all: a reader never sees half a message."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{job_id}.eml"
    # mkstemp's 0600 suits a file that may hold a reset code.
    fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{job_id}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(message.as_bytes())
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    return path
