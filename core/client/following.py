"""Following a job's event stream across reconnects: which event comes next, when to
try again and when to give up. The sync and async clients both drive one of these."""

from __future__ import annotations

import time

from httpx_sse import ServerSentEvent

from core.client.errors import UNREACHABLE, APIError
from core.client.models import JobEvent

# Until the server says otherwise with `retry:`.
DEFAULT_RETRY_SECONDS = 1.0
# The API writes a keepalive comment every 15 s: a stream silent for longer is dead.
READ_TIMEOUT_SECONDS = 45.0
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

    def request_headers(self) -> dict[str, str]:
        # Resumes after the last event seen, never repeating one.
        return {"Accept": "text/event-stream", "Last-Event-ID": str(self.last)}

    def read_timeout(self) -> float:
        if self._deadline is None:
            return READ_TIMEOUT_SECONDS
        return max(0.1, min(READ_TIMEOUT_SECONDS, self._deadline - time.monotonic()))

    def connected(self) -> None:
        self._progress_at = time.monotonic()

    def accept(self, sse: ServerSentEvent) -> JobEvent | None:
        """The event this message carries, if it is one not seen yet."""
        if sse.retry:
            self._retry = sse.retry / 1000
        if not sse.data:
            return None
        event = JobEvent.model_validate_json(sse.data)
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
        now = time.monotonic()
        if self._deadline is not None and now >= self._deadline:
            raise TimeoutError("the job did not finish in time") from error
        retryable = error.status == 0 or error.status >= 500 or error.status == 429
        if not retryable or now - self._progress_at > self._reconnect_for:
            raise error
        pause = error.retry_after if error.retry_after is not None else self._retry
        if self._deadline is not None:
            pause = min(pause, max(0.0, self._deadline - now))
        return pause
