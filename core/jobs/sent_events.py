"""The task-sent events of the jobs a process publishes, sent in batches.

Flower learns that a task was sent, and what it is (its name, its arguments as
`argsrepr`/`kwargsrepr`, its queue), from the publisher's `task-sent` event. Celery
sends one with every task message, a second publish to the broker for each job. This
dispatcher holds them instead and sends each `BATCH_SECONDS`' worth as one message
(`task.multi`, as a worker sends its own batches), which Flower reads event by event: a
job shows as sent up to that much later, and a job's message costs one publish.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import kombu
from celery import Celery
from celery.events.dispatcher import EventDispatcher
from celery.events.event import Event
from celery.utils.time import utcoffset

from core.jobs.background_batch import BackgroundBatch

log = logging.getLogger("conveyor.publish")

BATCH_SECONDS = 0.1


class SentEvents(EventDispatcher):
    """Passed to Celery's `send_task_message` as its `event_dispatcher`: the events it
    hands over are kept, and sent by a thread of this process's own. `close` sends what
    is held; events after it go at once, with their message."""

    # Celery's, missing from its type stubs (or, for `app`, typed as optional).
    app: Celery
    mutex: Any
    _publish: Callable[..., None]
    clock: Any
    pid: int
    exchange: Any
    serializer: str
    headers: dict[str, str]
    delivery_mode: int | str

    def __init__(self, app: Celery, interval: float = BATCH_SECONDS) -> None:
        # Not enabled: like Celery's own default, it has no producer of its own, and
        # borrows one from the app's pool for each batch.
        super().__init__(app=app, enabled=False)
        self._batch: BackgroundBatch[dict[str, Any]] = BackgroundBatch(
            self._send, interval, "task-sent-events"
        )

    def publish(
        self,
        type: str,  # noqa: A002 - Celery's name
        fields: dict[str, Any],
        producer: kombu.Producer,
        blind: bool = False,
        Event: Callable[..., dict[str, Any]] = Event,  # noqa: N803 - Celery's name
        **kwargs: Any,
    ) -> None:
        clock = None if blind else self.clock.forward()
        event = Event(
            type, hostname=self.hostname, utcoffset=utcoffset(), pid=self.pid, clock=clock, **fields
        )
        if not self._batch.hold([event]):
            # No batch coming (shutting down): beside the message, on the caller's
            # producer, as Celery does. Borrowing a second one could wait for ever on a
            # pool that callers holding one each have emptied.
            with self.mutex:
                self._publish(event, producer, type.replace("-", "."), **kwargs)

    def _send(self, events: list[dict[str, Any]]) -> None:
        exchange = self.exchange
        try:
            with self.app.producer_or_acquire() as producer:
                producer.publish(
                    events,
                    routing_key="task.multi",
                    exchange=exchange.name,
                    declare=[exchange],
                    serializer=self.serializer,
                    headers=self.headers,
                    delivery_mode=self.delivery_mode,
                    retry=True,
                    retry_policy=self.app.conf.task_publish_retry_policy,
                )
        except Exception as exc:  # only what the monitor shows is at stake
            log.info("%d task-sent event(s) not sent (%s)", len(events), type(exc).__name__)

    def close(self) -> None:
        self._batch.close()
