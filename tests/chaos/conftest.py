"""Chaos scenarios: each test owns a PostgreSQL and a broker of its own (a Redis server,
or a RabbitMQ virtual host behind a proxy; every scenario runs on both), starts real
API, worker and beat processes against them, and kills, restarts or cuts any of them.
Each records what it saw (`scenario`), and the summary at the end of the run prints it
(tests/support/chaos_report.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import kombu
import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from core.db import Database, retrying
from core.jobs.contracts import Queue
from core.migrate import upgrade
from core.models import Job
from tests.support import jobs
from tests.support.chaos_report import Scenario
from tests.support.factories import User
from tests.support.rabbitmq import rabbitmq_vhost
from tests.support.servers import PostgresServer, RedisServer
from tests.support.stack import Stack
from tests.support.tcp_proxy import TcpProxy
from tests.support.worker import WorkerProcess

# Short clocks, so that each recovery path shows within a test's patience; the figures
# are reported against them (a job's recovery after a dead worker is bounded by the
# lease plus a reconciler round).
CHAOS_SETTINGS = {
    # Kills every few seconds can land on one job more than twice, the more so as a
    # tenant's few sent jobs are picked up again at once; each kill costs an attempt.
    # These scenarios are about losing nothing: a job killed past its attempts (failed,
    # worker_lost) has tests of its own in tests/integration.
    "JOB_MAX_ATTEMPTS": "10",
    "JOB_LEASE_SECONDS": "6",
    "RECONCILE_INTERVAL_SECONDS": "1",
    "UNPUBLISHED_GRACE_SECONDS": "1",
    "LOST_MESSAGE_GRACE_SECONDS": "3",
}
TERMINAL = ("succeeded", "failed", "cancelled")


class Broker(Protocol):
    url: str

    def stop(self) -> None:
        """An outage: every connection cut, none accepted."""

    def start(self) -> None:
        """Back, with whatever it kept."""

    def lose_everything(self) -> None:
        """Every message waiting in a queue is gone (a restart that kept nothing)."""

    def waiting(self, queue: str) -> int:
        """Messages waiting in `queue` (not taken by a worker)."""


class RedisBroker:
    """A Redis of the test's own: an outage is the server going away, and it comes
    back empty (it keeps nothing on disk, like the machine's)."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.url = server.url

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server.start()

    def lose_everything(self) -> None:
        self.server.stop()
        self.server.start()

    def waiting(self, queue: str) -> int:
        length: int = redis.Redis.from_url(self.url).llen(queue)  # type: ignore[assignment]
        return length


class RabbitBroker:
    """The machine's RabbitMQ, in a virtual host of the test's own, reached through a
    proxy: an outage cuts every connection; its durable queues keep their messages."""

    def __init__(self, vhost_url: str) -> None:
        self.direct = vhost_url
        parts = urlsplit(vhost_url)
        self.proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672)
        self.proxy.start()
        netloc = f"{parts.username}:{parts.password}@127.0.0.1:{self.proxy.port}"
        self.url = urlunsplit(parts._replace(netloc=netloc))

    def stop(self) -> None:
        self.proxy.stop()

    def start(self) -> None:
        self.proxy.start()

    def lose_everything(self) -> None:
        with kombu.Connection(self.direct) as connection:
            for queue in Queue:
                channel: Any = connection.channel()
                try:
                    channel.queue_purge(queue.value)
                except connection.channel_errors:
                    pass  # never declared: nothing to lose
                finally:
                    channel.close()

    def waiting(self, queue: str) -> int:
        with kombu.Connection(self.direct) as connection:
            channel: Any = connection.default_channel
            declared = channel.queue_declare(queue=queue, passive=True)
            count: int = declared.message_count
            return count


@dataclass
class Chaos:
    stack: Stack
    postgres: PostgresServer
    broker: Broker
    folder: Path
    api: TestClient
    workers: list[WorkerProcess] = field(default_factory=list)

    def start_worker(self, name: str, *, concurrency: int = 2, beat: bool = False) -> WorkerProcess:
        folder = self.folder / f"{name}-{len(self.workers)}"
        folder.mkdir()
        worker = WorkerProcess(
            self.stack.env, folder, concurrency=concurrency, beat=beat, name=name
        )
        self.workers.append(worker)
        return worker

    def submit(
        self, user: User, kind: str, job_input: dict[str, Any], count: int = 1
    ) -> list[uuid.UUID]:
        return [
            uuid.UUID(jobs.submit(self.api, user.headers, kind, job_input)["id"])
            for _ in range(count)
        ]

    def worker_logs(self) -> str:
        return "\n".join(worker.log() for worker in self.workers)

    def jobs(self, ids: list[uuid.UUID]) -> list[Job]:
        """The jobs as they are now, read straight from the database (which may have
        just restarted: a dropped pooled connection is tried again)."""

        def read() -> list[Job]:
            with self.stack.db.transaction() as session:
                return list(session.scalars(select(Job).where(Job.id.in_(ids))))

        return retrying("read of the jobs", read, deadline=time.monotonic() + 30)

    def wait_until_finished(self, ids: list[uuid.UUID], timeout: float) -> list[Job]:
        deadline = time.monotonic() + timeout
        while True:
            jobs = self.jobs(ids)
            if all(job.status in TERMINAL for job in jobs):
                return jobs
            if time.monotonic() > deadline:
                waiting = [
                    (str(j.id), j.status, j.attempts) for j in jobs if j.status not in TERMINAL
                ]
                raise AssertionError(
                    f"{len(waiting)} jobs unfinished after {timeout}s: {waiting[:5]}"
                )
            time.sleep(0.1)

    def wait_for_status(
        self, ids: list[uuid.UUID], status: str, count: int, timeout: float
    ) -> None:
        deadline = time.monotonic() + timeout
        while sum(job.status == status for job in self.jobs(ids)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"fewer than {count} jobs {status} after {timeout}s")
            time.sleep(0.05)

    def tally(self, scenario: Scenario, ids: list[uuid.UUID]) -> list[Job]:
        """Count what became of the jobs into the scenario's record."""
        jobs = self.jobs(ids)
        scenario.submitted = len(ids)
        scenario.succeeded = sum(job.status == "succeeded" for job in jobs)
        scenario.stuck = sum(job.status not in TERMINAL for job in jobs)
        scenario.rerun = sum(job.attempts > 1 for job in jobs)
        # A handler that ran to its end for an attempt whose outcome could not be
        # written, or was no longer its own: the job's work was done twice.
        logs = self.worker_logs()
        scenario.duplicated = logs.count("finished but was not ours") + logs.count("not written")
        return jobs


@contextmanager
def broker_for(name: str, folder: Path) -> Iterator[Broker]:
    if name == "rabbitmq":
        with rabbitmq_vhost() as url:
            rabbit = RabbitBroker(url)
            try:
                yield rabbit
            finally:
                rabbit.stop()
        return
    server = RedisServer(folder / "redis")
    server.start()
    try:
        yield RedisBroker(server)
    finally:
        server.stop()


@pytest.fixture(params=["redis", "rabbitmq"])
def chaos(request: pytest.FixtureRequest, stack: Stack, tmp_path: Path) -> Iterator[Chaos]:
    """API, workers and beat on a PostgreSQL and a broker this test may kill or cut, on
    each broker. Redis keeps the accounts' codes and counters as ever (the session's).
    SMTP and S3 are the session's too."""
    from api.app import create_app

    postgres = PostgresServer()
    try:
        postgres.start()
        database_url = postgres.create_database("conveyor")
        with broker_for(request.param, tmp_path) as broker:
            env = {
                **stack.env,
                **CHAOS_SETTINGS,
                "DATABASE_URL": database_url,
                "BROKER_URL": broker.url,
            }
            settings = stack.settings.model_copy(
                update={
                    "database_url": SecretStr(database_url),
                    "broker_url": SecretStr(broker.url),
                    **{name.lower(): float(value) for name, value in CHAOS_SETTINGS.items()},
                }
            )
            upgrade(settings.sqlalchemy_url())
            db = Database(settings, "tests")
            own = Stack(
                settings, env, database_url, stack.redis_url, tmp_path, stack.smtp, stack.s3, db
            )
            with TestClient(create_app(settings), raise_server_exceptions=False) as api:
                chaos = Chaos(own, postgres, broker, tmp_path, api)
                try:
                    yield chaos
                finally:
                    for worker in chaos.workers:
                        worker.stop()
                    db.dispose()
    finally:
        postgres.remove()


@pytest.fixture
def scenario(request: pytest.FixtureRequest) -> Iterator[Scenario]:
    """What the test saw, for the run's summary; filled in by the test."""
    record = Scenario(name=request.node.name.removeprefix("test_"))
    yield record
    request.node.user_properties.append(("chaos", record.to_json()))
