"""Following a job's event stream across reconnects: which event comes next, when to
try again and when to give up. The sync and async clients both drive one of these."""

from __future__ import annotations

import time

import httpx
from httpx_sse import ServerSentEvent

# The spec's line parser. httpx_sse's own reading loop gives control back only at
# events, and a deadline must also be checked at the keepalives between them.
from httpx_sse._decoders import SSEDecoder

from core.client.errors import UNREACHABLE, APIError
from core.client.models import JobEvent

# Until the server says otherwise with `retry:`.
DEFAULT_RETRY_SECONDS = 1.0
# The API writes a keepalive comment every 15 s: a stream silent for longer is dead.
READ_TIMEOUT_SECONDS = 45.0
CONNECT_TIMEOUT_SECONDS = 10.0
# How long a stream may go without a new event or a connection before the error that
# keeps it from one is raised.
RECONNECT_FOR_SECONDS = 120.0


class Following:
    def __init__(self, after: int, reconnect_for: float, deadline: float | None) -> None:
        self.last = after
        self.done = False
        self._retry = DEFAULT_RETRY_SECONDS
        self._reconnect_for = reconnect_for
        self._deadline = deadline
        self._progress_at = time.monotonic()
        self._decoder = SSEDecoder()

    def request_headers(self) -> dict[str, str]:
        # Resumes after the last event seen, never repeating one.
        return {"Accept": "text/event-stream", "Last-Event-ID": str(self.last)}

    def timeout(self) -> httpx.Timeout:
        read = READ_TIMEOUT_SECONDS
        if self._deadline is not None:
            read = max(0.1, min(read, self._deadline - time.monotonic()))
        return httpx.Timeout(CONNECT_TIMEOUT_SECONDS, read=read)

    def check_deadline(self) -> None:
        """Called at every line of the stream, keepalives included."""
        if self._deadline is not None and time.monotonic() >= self._deadline:
            raise TimeoutError("the job did not finish in time")

    def connected(self) -> None:
        self._progress_at = time.monotonic()
        self._decoder = SSEDecoder()

    def line(self, line: str) -> JobEvent | None:
        """A line of the stream: the event it completes, if that is one not seen yet."""
        self.check_deadline()
        sse = self._decoder.decode(line)
        return None if sse is None else self.accept(sse)

    def accept(self, sse: ServerSentEvent) -> JobEvent | None:
        """The event this message carries, if it is one not seen yet."""
        if sse.retry:
            self._retry = sse.retry / 1000
        if not sse.data:
            return None
        return self.take(JobEvent.model_validate_json(sse.data))

    def take(self, event: JobEvent) -> JobEvent | None:
        """`event`, unless it was seen already."""
        if event.seq <= self.last:
            return None
        self.last = event.seq
        self._progress_at = time.monotonic()
        self.done = event.ends_job
        return event

    def ended_early(self) -> APIError:
        return APIError(0, UNREACHABLE, "the event stream ended before the job did")

    def pause(self, error: APIError) -> float:
        """Seconds to wait before reconnecting after `error`, or raise it (or
        TimeoutError past the deadline) when there is no point."""
        self.check_deadline()
        retryable = error.status == 0 or error.status >= 500 or error.status == 429
        if not retryable or time.monotonic() - self._progress_at > self._reconnect_for:
            raise error
        pause = error.retry_after if error.retry_after is not None else self._retry
        if self._deadline is not None:
            pause = min(pause, max(0.0, self._deadline - time.monotonic()))
        return pause
