"""One webhook POST, sent only where webhooks may go.

The host is resolved here and every address it resolves to is checked
(`core.webhooks.targets`) before connecting to one of them, so what is checked is what
is connected to: a name that resolves elsewhere a moment later (DNS rebinding) cannot
slip past. TLS still verifies the certificate against the URL's host name. No proxy
from the environment, no redirects followed, timeouts on connecting and on the whole
request, and only the first bytes of the answer read.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import httpcore

from core.errors import ConveyorError
from core.webhooks import targets
from core.webhooks.deliveries import EXCERPT_BYTES, Answer

# The most of an answer's body read; the rest is not waited for.
MAX_ANSWER_BYTES = 64 * 1024
USER_AGENT = "Conveyor-Webhooks/1"


class TargetRefused(Exception):
    """The URL's host resolves to an address webhooks may not reach."""


class _CheckedBackend(httpcore.SyncBackend):
    def __init__(self, allow_private: bool) -> None:
        self._allow_private = allow_private

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
        return super().connect_tcp(str(addresses[0]), port, timeout, local_address, socket_options)


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
    deadline = started + timeout

    def elapsed_ms() -> int:
        return round((time.monotonic() - started) * 1000)

    pool = httpcore.ConnectionPool(
        network_backend=_CheckedBackend(allow_private), max_connections=1, retries=0
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
                if len(read) >= MAX_ANSWER_BYTES or time.monotonic() > deadline:
                    break
            if time.monotonic() > deadline:
                return Answer(None, elapsed_ms(), error=f"no answer within {timeout:g} s")
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


def _excerpt(read: bytes) -> str | None:
    if not read:
        return None
    return read[:EXCERPT_BYTES].decode("utf-8", errors="replace")


def _reason(exc: Exception) -> str:
    return str(exc)[:200] or type(exc).__name__
