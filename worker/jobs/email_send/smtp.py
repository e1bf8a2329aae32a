"""Delivery over SMTP, and which of its failures are worth another attempt.

A 4xx reply or a lost connection may pass (greylisting, a restarting relay); a 5xx
reply, refused credentials or a missing extension will not, so those fail at once.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from core.settings import Settings, SmtpTls
from worker.errors import PermanentJobError, TransientJobError

# Enough of a server's reply to tell "user unknown" from "relaying denied".
MAX_REPLY_CHARS = 200


def send(settings: Settings, host: str, message: EmailMessage) -> None:
    """Deliver `message`; failures come out as TransientJobError or PermanentJobError."""
    client: smtplib.SMTP | None = None
    try:
        client = _connect(settings, host)
        if settings.smtp_tls is SmtpTls.STARTTLS:
            client.starttls(context=ssl.create_default_context())
        if settings.smtp_user:
            password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
            client.login(settings.smtp_user, password)
        client.send_message(message)
    except OSError as exc:  # smtplib.SMTPException and ssl.SSLError are OSErrors too
        raise _job_error(exc, settings, host) from exc
    finally:
        if client is not None:
            _close(client)


def _connect(settings: Settings, host: str) -> smtplib.SMTP:
    timeout = settings.smtp_timeout_seconds
    if settings.smtp_tls is SmtpTls.SSL:
        return smtplib.SMTP_SSL(
            host, settings.smtp_port, timeout=timeout, context=ssl.create_default_context()
        )
    return smtplib.SMTP(host, settings.smtp_port, timeout=timeout)


def _close(client: smtplib.SMTP) -> None:
    # Once the server has accepted the message, a failed QUIT must not fail the job
    # (a retry would send it twice); smtplib's own context manager would raise here.
    try:
        client.quit()
    except OSError:
        client.close()


def _job_error(exc: OSError, settings: Settings, host: str) -> Exception:
    server = f"SMTP server {host}:{settings.smtp_port}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        # One recipient per message, so one reply; not an SMTPResponseException.
        code, reply = next(iter(exc.recipients.values()), (-1, b""))
        return _by_code(f"The {server} refused the recipient", code, reply, settings)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return TransientJobError(f"Lost the connection to the {server}")
    if isinstance(exc, smtplib.SMTPConnectError):
        return TransientJobError(
            f"The {server} did not accept the connection: {_reply(exc.smtp_code, exc.smtp_error)}"
        )
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        if _temporary(exc.smtp_code):
            return TransientJobError(f"The {server} could not check the login now: {exc.smtp_code}")
        # The code only: some servers echo parts of the AUTH exchange in their reply.
        return PermanentJobError(
            f"The {server} refused the login of SMTP_USER {settings.smtp_user!r}: {exc.smtp_code}",
            type="smtp_auth_failed",
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        return _by_code(f"The {server} {_refused(exc)}", exc.smtp_code, exc.smtp_error, settings)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return PermanentJobError(
            f"The {server} lacks a required extension: {_redact(str(exc), settings)}",
            type="smtp_unsupported",
        )
    if isinstance(exc, smtplib.SMTPException):
        return PermanentJobError(
            f"SMTP with the {server} failed: {_redact(str(exc), settings)}", type="smtp_error"
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return PermanentJobError(
            f"The TLS certificate of the {server} failed verification: {exc.verify_message}",
            type="smtp_tls_failed",
        )
    if isinstance(exc, ssl.SSLError) and not isinstance(
        exc, ssl.SSLEOFError | ssl.SSLZeroReturnError | ssl.SSLSyscallError
    ):
        # A handshake that fails the same way every time, e.g. SMTP_TLS=ssl on a
        # plain port.
        return PermanentJobError(
            f"TLS with the {server} failed: {exc.reason or type(exc).__name__}; check SMTP_TLS",
            type="smtp_tls_failed",
        )
    # Refused, reset, timed out, name not resolved, TLS cut off: the network's fault.
    detail = f"{type(exc).__name__}: {exc.strerror}" if exc.strerror else type(exc).__name__
    return TransientJobError(f"Could not talk to the {server}: {detail}")


def _refused(exc: smtplib.SMTPResponseException) -> str:
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return "refused the sender"
    if isinstance(exc, smtplib.SMTPDataError):
        return "refused the message"
    if isinstance(exc, smtplib.SMTPHeloError):
        return "refused the greeting"
    return "answered"


def _by_code(what: str, code: int, reply: bytes | str, settings: Settings) -> Exception:
    message = f"{what}: {_redact(_reply(code, reply), settings)}"
    if _temporary(code):
        return TransientJobError(message)
    return PermanentJobError(message, type="email_rejected")


def _temporary(code: int) -> bool:
    return 400 <= code <= 499


def _reply(code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return f"{code} {' '.join(text.split())[:MAX_REPLY_CHARS]}".rstrip()


def _redact(text: str, settings: Settings) -> str:
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
    return text.replace(password, "***") if password else text
