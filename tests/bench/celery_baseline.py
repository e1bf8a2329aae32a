"""Phase 1 of `make bench`, the baseline: a no-op worker alone (noop_worker.py) with the
job worker's broker, settings, pool and concurrency; N tasks published from as many
threads as the client's concurrency, timed from the first publish to the last task run."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import redis
from celery import Celery

from core.jobs.celery_app import create_celery
from tests.bench import cpu
from tests.bench.failures import BenchError
from tests.bench.noop_task import NOOP_TASK, noop_done_key
from tests.bench.options import PipelineOptions
from tests.bench.output import say
from tests.bench.stack import STARTUP_SECONDS, LoggedGroup, Stack, celery_worker_argv


@dataclass(frozen=True)
class CeleryResult:
    tasks: int
    publish_seconds: float
    total_seconds: float
    cpu: cpu.Usage | None

    @property
    def per_second(self) -> float:
        return self.tasks / self.total_seconds


def _wait_noop_batch(
    client: redis.Redis, counter: str, group: LoggedGroup, timeout: float
) -> float:
    """The worker's clock when the batch's last task ran."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        group.check_alive()
        stamp: bytes | None = client.get(noop_done_key(counter))  # type: ignore[assignment]
        if stamp is not None:
            return float(stamp)
        time.sleep(0.005)
    count: bytes | None = client.get(counter)  # type: ignore[assignment]
    done = int(count or 0)
    raise BenchError(f"no-op tasks: only {done} executed after {timeout:.0f} s")


def _noop_batch(
    app: Celery,
    client: redis.Redis,
    group: LoggedGroup,
    label: str,
    count: int,
    concurrency: int,
    timeout: float,
) -> tuple[float, float, float]:
    """Publish `count` no-op tasks from `concurrency` threads; returns (wall start,
    publish seconds, wall end)."""
    counter = f"conveyor:bench:noop:{label}:{uuid.uuid4().hex}"
    indexes = iter(range(count))
    lock = threading.Lock()

    def lane() -> None:
        while True:
            with lock:
                if next(indexes, None) is None:
                    return
            app.send_task(NOOP_TASK, args=[counter, count])

    started = time.time()
    publish_start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="publish") as pool:
        for future in [pool.submit(lane) for _ in range(min(concurrency, count))]:
            future.result(timeout=timeout)
    published = time.perf_counter() - publish_start
    finished = _wait_noop_batch(client, counter, group, timeout)
    return started, published, finished


def measure_celery(stack: Stack, opts: PipelineOptions) -> CeleryResult:
    settings = stack.settings()
    app = create_celery(settings, "conveyor-bench-client")
    with (
        redis.Redis.from_url(stack.servers.redis_url, socket_timeout=10) as client,
        stack.group() as group,
    ):
        group.start(
            "noop",
            celery_worker_argv("tests.bench.noop_worker", "bench-noop", opts.worker_concurrency),
        )
        say(f"celery: warming up with {opts.warmup} no-op tasks (includes worker start-up)")
        _noop_batch(app, client, group, "warmup", opts.warmup, opts.concurrency, STARTUP_SECONDS)
        say(f"celery: timing {opts.jobs} no-op tasks")
        before = cpu.snapshot(time.monotonic())
        started, published, finished = _noop_batch(
            app, client, group, "timed", opts.jobs, opts.concurrency, opts.timeout
        )
        used = cpu.usage(before, cpu.snapshot(time.monotonic()), group.roots(), opts.database_name)
    app.close()
    return CeleryResult(
        tasks=opts.jobs, publish_seconds=published, total_seconds=finished - started, cpu=used
    )
