"""The Celery application as both sides configure it.

The API uses it only to publish (`publish_job`); the worker adds its tasks and
the beat schedule on top. Results live in PostgreSQL, so there is no result backend.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from celery import Celery
from celery.events.dispatcher import EventDispatcher
from kombu import Queue as KombuQueue

from core.jobs.contracts import KINDS, Queue
from core.jobs.messages import JobMessage
from core.settings import Settings


def broker_transport_options(settings: Settings, broker_url: str) -> dict[str, Any]:
    if broker_url.startswith("filesystem://"):
        folder = settings.broker_dir
        for name in ("queue", "processed", "control"):
            (folder / name).mkdir(parents=True, exist_ok=True)
        return {
            # One machine: producers and consumers share a single queue folder.
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "store_processed": False,
            "control_folder": str(folder / "control"),
        }
    if _is_amqp(broker_url):
        return {
            # The broker confirms each publish: a job's message that RabbitMQ did not
            # take is an error at once (the reconciler sends it again), never silence.
            "confirm_publish": True,
        }
    return {
        # An unacknowledged message is delivered again after this long.
        "visibility_timeout": settings.broker_visibility_timeout_seconds,
        # Restore unacked messages of dead workers on every check, not every 10th.
        "unacked_restore_throttle": 1,
        "socket_connect_timeout": 5,
        "socket_timeout": 30,
        "retry_on_timeout": True,
        "health_check_interval": 25,
    }


def _is_amqp(broker_url: str) -> bool:
    return broker_url.split("://", 1)[0] in ("amqp", "amqps", "pyamqp")


def _queues(broker_url: str) -> list[KombuQueue]:
    """The job queues. On RabbitMQ they are quorum queues: replicated, durable, and
    they keep a message a consumer took until it is acknowledged, across restarts."""
    arguments = {"x-queue-type": "quorum"} if _is_amqp(broker_url) else None
    return [
        KombuQueue(q.value, routing_key=q.value, durable=True, queue_arguments=arguments)
        for q in Queue
    ]


def _transport(broker_url: str) -> str | None:
    """The transport class, where it is not the one the URL's scheme names."""
    scheme = broker_url.split("://", 1)[0]
    if scheme == "filesystem":
        return "core.jobs.filesystem_broker:Transport"
    if scheme in ("redis", "rediss"):
        return "core.jobs.redis_broker:Transport"
    return None


def create_celery(settings: Settings, name: str) -> Celery:
    broker_url = settings.celery_broker_url()
    app = Celery(name, set_as_current=False)
    app.conf.update(
        broker_url=broker_url,
        broker_transport=_transport(broker_url),
        broker_transport_options=broker_transport_options(settings, broker_url),
        broker_connection_retry_on_startup=True,
        # A worker that lost the broker keeps trying to reconnect for as long as the
        # outage lasts (Celery's default gives up after 100 tries, about 50 minutes).
        broker_connection_max_retries=None,
        broker_connection_timeout=5,
        # A failed publish must fail fast: the job row is already committed and the
        # reconciler sends it later, so the request should not hang on a dead broker.
        task_publish_retry_policy={
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        # How long the main process waits for a result from a pool process that died
        # before it declares the job's worker lost (and requeues the job). Results
        # live in PostgreSQL, so there is nothing to wait for.
        worker_lost_wait=1.0,
        # A broker outage does not stop running jobs: they finish and write their
        # outcome to PostgreSQL; a copy of the message delivered again later finds the
        # job finished and is turned away by the claim.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
        task_default_queue=Queue.DEFAULT.value,
        task_queues=_queues(broker_url),
        task_routes={kind.task_name: {"queue": kind.queue.value} for kind in KINDS.values()},
        enable_utc=True,
        timezone="UTC",
    )
    return app


def publish_job(app: Celery, message: JobMessage, events: EventDispatcher | None = None) -> None:
    """Send the job's task, and its task-sent event through `events` (Celery's default:
    a second publish, at once). The task id is the job id, so Flower shows one per job.
    Never with a countdown: a delayed job waits in PostgreSQL (`jobs.run_after`).

    Celery's `send_task` without what a job's message never uses: routing by name (the
    kind names its queue), a result backend (results live in PostgreSQL), and a parent
    task (a job published by a worker, its tenant's next, is not a child of the job that
    ran there)."""
    kind = message.kind
    task_id = str(message.job_id)
    amqp = app.amqp
    task_message = amqp.create_task_message(
        task_id,
        kind.task_name,
        [task_id],
        create_sent_event=app.conf.task_send_sent_event,
        reply_to=app.thread_oid,
        ignore_result=True,
        argsrepr=message.argsrepr(),
        kwargsrepr=message.kwargsrepr(),
    )
    with app.producer_or_acquire() as producer:
        # As `send_task` does: a broker error surfaces as kombu's OperationalError.
        with producer.connection._reraise_as_library_errors():
            amqp.send_task_message(
                producer,
                kind.task_name,
                task_message,
                queue=kind.queue.value,
                headers=message.headers(),
                event_dispatcher=events,
            )


def ready_messages(app: Celery, queues: Iterable[str]) -> dict[str, int]:
    """How many messages wait in each queue at the broker, not counting the ones workers
    have taken and not yet acknowledged. Raises if the broker cannot be asked."""
    counts: dict[str, int] = {}
    with app.connection_for_write(connect_timeout=3) as connection:
        connection.ensure_connection(max_retries=1)
        channel: Any = connection.channel()
        try:
            for name in queues:
                try:
                    counts[name] = channel.queue_declare(queue=name, passive=True).message_count
                except connection.channel_errors:
                    # No such queue: nothing published to it has waited there since the
                    # broker started. AMQP closes the channel on this error.
                    counts[name] = 0
                    channel = connection.channel()
        finally:
            channel.close()
    return counts
