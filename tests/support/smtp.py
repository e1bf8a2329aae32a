"""A real SMTP server for tests, on 127.0.0.1 and a free port, that keeps what it
receives and can be told to refuse (451 to test retries, 550 to test failures)."""

from __future__ import annotations

import email
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from types import TracebackType

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

TEMPORARY_FAILURE = "451 4.3.0 Try again later"
PERMANENT_FAILURE = "550 5.7.1 Message rejected"


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


def free_port() -> int:
    """A port nothing listens on (right now): also how a test gets a server that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class SmtpServer:
    """Use as a context manager; `port` is set on construction."""

    def __init__(
        self,
        *,
        fail_first: int = 0,
        always_reject: bool = False,
        login: tuple[str, str] | None = None,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.fail_first = fail_first
        self.always_reject = always_reject
        self.data_commands = 0
        self._received: list[Received] = []
        self._changed = threading.Condition()
        self._controller = Controller(
            self,
            hostname=self.host,
            port=self.port,
            # A fixed name: the default looks up this host's FQDN, which can be slow.
            server_hostname="smtp.test",
            authenticator=None if login is None else _Authenticator(*login),
            # Plain connections in tests, so AUTH without TLS. `auth_required` would
            # warn about that; handle_DATA insists on the login instead.
            auth_require_tls=False,
        )
        self._login_required = login is not None

    def __enter__(self) -> SmtpServer:
        self._controller.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._controller.stop()

    @property
    def received(self) -> list[Received]:
        with self._changed:
            return list(self._received)

    def clear(self) -> None:
        """Forget what was received (each test starts with an empty mailbox)."""
        with self._changed:
            self._received.clear()

    def wait_for(
        self, predicate: Callable[[Received], bool] = lambda _: True, timeout: float = 5.0
    ) -> Received:
        """The first message received that matches; AssertionError after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for item in self._received:
                    if predicate(item):
                        return item
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"no matching message within {timeout}s; got {len(self._received)}"
                    )
                self._changed.wait(remaining)

    # aiosmtpd hook: runs on the server's event loop thread.
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        with self._changed:
            self.data_commands += 1
            if self._login_required and not session.authenticated:
                return "530 5.7.0 Authentication required"
            if self.always_reject:
                return PERMANENT_FAILURE
            if self.data_commands <= self.fail_first:
                return TEMPORARY_FAILURE
            # Lines as a mail client shows them, not the CRLF of the wire.
            content = (envelope.original_content or b"").replace(b"\r\n", b"\n")
            message = email.message_from_bytes(content, policy=policy.default)
            assert isinstance(message, EmailMessage)
            self._received.append(
                Received(envelope.mail_from or "", list(envelope.rcpt_tos), message)
            )
            self._changed.notify_all()
        return "250 2.0.0 OK"


class _Authenticator:
    def __init__(self, user: str, password: str) -> None:
        self.expected = (user.encode(), password.encode())

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: object
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and (
                auth_data.login,
                auth_data.password,
            )
            == self.expected
        )
        # handled=False: smtp_AUTH then answers 535 itself.
        return AuthResult(success=ok, handled=False)
