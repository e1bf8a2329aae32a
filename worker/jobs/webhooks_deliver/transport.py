"""One webhook POST, sent only where webhooks may go.

The host is resolved here and every address it resolves to is checked
(`core.webhooks.targets`) before connecting to one of them, so what is checked is what
is connected to: a name that resolves elsewhere a moment later (DNS rebinding) cannot
slip past. TLS still verifies the certificate against the URL's host name. No proxy
from the environment, no redirects followed, timeouts on connecting and on the whole
request, and only the first bytes of the answer read.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Iterable
from typing import Any

import httpcore

from core.errors import ConveyorError
from core.webhooks import targets
from core.webhooks.deliveries import EXCERPT_BYTES, Answer

log = logging.getLogger("conveyor.worker")

# The most of an answer's body read; the rest is not waited for.
MAX_ANSWER_BYTES = 64 * 1024
USER_AGENT = "Conveyor-Webhooks/1"


class TargetRefused(Exception):
    """The URL's host resolves to an address webhooks may not reach."""


class _Deadline:
    """The end of the whole request: every step's wait is cut to what is left of it, so
    a receiver that answers a byte at a time cannot hold a delivery thread."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def cap(self, timeout: float | None) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise httpcore.ReadTimeout("the delivery's time is up")
        return left if timeout is None else min(timeout, left)


class _BoundedStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._stream = stream
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._deadline.cap(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._deadline.cap(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        tls = self._stream.start_tls(ssl_context, server_hostname, self._deadline.cap(timeout))
        return _BoundedStream(tls, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _CheckedBackend(httpcore.SyncBackend):
    """Connects only to addresses `core.webhooks.targets` allows, within the deadline."""

    def __init__(self, allow_private: bool, deadline: _Deadline) -> None:
        self._allow_private = allow_private
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = targets.resolve(host, port, allow_private=self._allow_private)
        except ConveyorError as exc:
            raise TargetRefused(exc.detail) from exc
        failure: Exception | None = None
        for address in addresses:  # each one checked; the next if one cannot be reached
            try:
                stream = super().connect_tcp(
                    str(address), port, self._deadline.cap(timeout), local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            return _BoundedStream(stream, self._deadline)
        assert failure is not None  # resolve() returns at least one address
        raise failure


def post(
    url: str,
    headers: dict[str, str],
    body: bytes,
    *,
    allow_private: bool,
    connect_timeout: float,
    timeout: float,
) -> Answer:
    """POST `body`; the receiver's answer, or the error that stopped it. Raises
    TargetRefused for an address webhooks may not reach."""
    started = time.monotonic()

    def elapsed_ms() -> int:
        return round((time.monotonic() - started) * 1000)

    deadline = _Deadline(timeout)
    pool = httpcore.ConnectionPool(
        network_backend=_CheckedBackend(allow_private, deadline), max_connections=1, retries=0
    )
    request_headers: list[tuple[bytes | str, bytes | str]] = [
        *headers.items(),
        ("content-type", "application/json"),
        ("user-agent", USER_AGENT),
    ]
    extensions = {
        "timeout": {"connect": connect_timeout, "read": timeout, "write": timeout, "pool": timeout}
    }
    try:
        with (
            pool,
            pool.stream(
                "POST", url, headers=request_headers, content=body, extensions=extensions
            ) as response,
        ):
            read = bytearray()
            for chunk in response.iter_stream():
                read += chunk
                if len(read) >= MAX_ANSWER_BYTES:
                    break
            return Answer(response.status, elapsed_ms(), excerpt=_excerpt(bytes(read)))
    except TargetRefused:
        raise
    except httpcore.TimeoutException as exc:
        kind = "connecting" if isinstance(exc, httpcore.ConnectTimeout) else "waiting"
        return Answer(None, elapsed_ms(), error=f"timed out {kind}")
    except httpcore.ConnectError as exc:
        return Answer(None, elapsed_ms(), error=f"could not connect: {_reason(exc)}")
    except (httpcore.ProtocolError, httpcore.NetworkError) as exc:
        return Answer(None, elapsed_ms(), error=f"{type(exc).__name__}: {_reason(exc)}")
    except Exception as exc:
        # Whatever else the receiver's answer or the URL provoked is a failed attempt,
        # logged and retried like the others, never a delivery that stops unlogged.
        log.warning("webhook POST failed unexpectedly", exc_info=True)
        return Answer(None, elapsed_ms(), error=f"{type(exc).__name__}: {_reason(exc)}")


def _excerpt(read: bytes) -> str | None:
    if not read:
        return None
    return _storable(read[:EXCERPT_BYTES].decode("utf-8", errors="replace"))


def _reason(exc: Exception) -> str:
    return _storable(str(exc)[:200]) or type(exc).__name__


def _storable(text: str) -> str:
    """As PostgreSQL can store it: no NUL characters (an answer may hold any bytes)."""
    return text.replace("\x00", "\ufffd")
