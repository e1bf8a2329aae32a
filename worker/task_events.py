"""The task events Flower reads, sent in batches.

Celery's worker holds its task events (received, started, succeeded, ...) and sends
what it holds at the next turn of its event loop: under load, one publish for every
event or two, a third of the main process's time. This consumer sends them at most
every `BATCH_SECONDS` instead (sooner when Celery's buffer of 24 fills), one publish
each time: Flower sees a task's change up to that much later.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from celery.worker.consumer import Consumer

BATCH_SECONDS = 0.05
# A batch whose timer has not run this long after it was due was dropped with the event
# loop's timers (a reconnection): the next event schedules another.
_OVERDUE_SECONDS = 1.0


class BatchingConsumer(Consumer):
    # Celery's, missing from its type stubs.
    hub: Any
    _flush_events: Callable[[], None]

    _flush_at = 0.0

    def on_send_event_buffered(self) -> None:  # type: ignore[override]  # stubs: returns a callable
        hub = self.hub
        if hub is None:
            return
        now = time.monotonic()
        if self._flush_at and now < self._flush_at + _OVERDUE_SECONDS:
            return  # a batch is due soon and will carry this event
        self._flush_at = now + BATCH_SECONDS
        hub.call_later(BATCH_SECONDS, self._send_batch)

    def _send_batch(self) -> None:
        self._flush_at = 0.0
        self._flush_events()

    def shutdown(self) -> None:
        self._flush_events()  # what the last batch holds
        super().shutdown()
