"""The bench itself: prepare the servers, run each phase, print the figures.

Phases, in this order, each with its own warm-up:

1. celery: a no-op worker alone (`tests.bench.noop`); publish N tasks from as many
   threads as the client's concurrency and time first publish → last executed.
2. pipeline: api + job worker; submit N `diagnostics.echo` jobs over HTTP and time first
   submit → last `finished_at`; latency is `created_at → finished_at` per job.
3. poll: on the same stack, GET /healthz and GET /api/v1/jobs/{id} alternately in two
   rounds of half the requests each, so drift favours neither.
4. reset: on the same stack, POST /api/v1/auth/password-reset/request one at a time,
   for a registered email and for unregistered ones in turn, with a pause after each.
   Last, because each request for the registered email queues an `email.send` job
   (which fails in production, with no SMTP_HOST) that must not share the worker with
   the timed pipeline.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import secrets
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

import httpx
import redis
from celery import Celery
from sqlalchemy import ColumnElement, Engine, create_engine, func, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from core.dev.processes import ProcessGroup
from core.jobs.celery_app import create_celery
from core.jobs.contracts import ECHO, Queue
from core.jobs.states import TERMINAL, JobStatus
from core.migrate import upgrade
from core.models import Job
from core.settings import Settings
from tests.bench import NOOP_TASK, cpu, noop_done_key

DEFAULT_DATABASE_SERVER = "postgresql://postgres@127.0.0.1:5432"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
REPO_ROOT = Path(__file__).resolve().parents[2]
LOG_DIR = Path(".conveyor") / "bench"


QUEUES = ",".join(q.value for q in Queue)
STARTUP_SECONDS = 60.0
HTTP_TIMEOUT_SECONDS = 30.0
POLL_INTERVAL_SECONDS = 0.25
# The reset phase sends thousands of requests from one IP, for one email; the api's
# throttle would answer most of them 429, so it is lifted far above any run's count.
UNTHROTTLED = str(10**9)
# A reset request's work goes on after its response: the lookup and, for a registered
# email, a code, a job and the worker running it (about 15-25 ms on a 2-core machine).
# Sent back to back, that work would slow whichever request came next; the pause lets it
# finish, so each request is timed on an idle stack.
RESET_PAUSE_SECONDS = 0.05
TAIL_LINES = 30

T = TypeVar("T")

if TYPE_CHECKING:
    from tests.bench.s3 import S3Target


class BenchError(Exception):
    """The bench cannot produce an honest figure; the message says why."""


@dataclass(frozen=True)
class BenchOptions:
    jobs: int
    concurrency: int
    worker_concurrency: int
    poll_requests: int
    reset_requests: int
    api_workers: int
    warmup: int
    environment: str
    port: int
    database_name: str
    timeout: float
    verbose: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> BenchOptions:
        return cls(
            jobs=args.jobs,
            concurrency=args.concurrency,
            worker_concurrency=args.worker_concurrency,
            poll_requests=args.poll_requests,
            reset_requests=args.reset_requests,
            api_workers=args.api_workers,
            warmup=args.warmup,
            environment=args.environment,
            port=args.port,
            database_name=args.database_name,
            timeout=args.timeout,
            verbose=args.verbose,
        )


def say(message: str) -> None:
    print(message, flush=True)


# --- processes -------------------------------------------------------------------------


@dataclass
class LoggedGroup(ProcessGroup):
    """A ProcessGroup that also writes each process's output to a file and keeps its
    last lines, so a failed run can show why without flooding a successful one."""

    log_dir: Path = LOG_DIR
    tails: dict[str, deque[str]] = field(default_factory=dict)
    _pumps_done: list[threading.Event] = field(default_factory=list)

    def _pump(self, name: str, stream: IO[bytes]) -> None:
        done = threading.Event()
        self._pumps_done.append(done)
        tail = self.tails.setdefault(name, deque(maxlen=TAIL_LINES))
        try:
            with (self.log_dir / f"{name}.log").open("wb") as log:
                for line in iter(stream.readline, b""):
                    log.write(line)
                    text_line = line.decode(errors="replace")
                    tail.append(text_line)
                    if not self.quiet:
                        sys.stdout.write(f"{name:>7} | {text_line}")
                        sys.stdout.flush()
        finally:
            done.set()

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            code = proc.poll()
            if code is not None:
                raise BenchError(f"{name} exited with code {code}")

    def stop(self, timeout: float = 15.0) -> None:
        super().stop(timeout)
        # Let the pumps drain, so no process output lands after the summary.
        for done in self._pumps_done:
            done.wait(2.0)

    def print_tails(self) -> None:
        for name, tail in self.tails.items():
            if tail:
                say(f"--- last lines of {name} ({self.log_dir / name}.log) ---")
                sys.stdout.write("".join(tail))
        sys.stdout.flush()


def _python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def celery_worker_argv(app: str, node: str, concurrency: int) -> list[str]:
    return _python_module(
        "celery",
        "-A",
        app,
        "worker",
        "-Q",
        QUEUES,
        "--concurrency",
        str(concurrency),
        "--pool",
        "prefork",
        "-n",
        f"{node}@%h",
    )


# --- servers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Servers:
    database: URL  # the bench database, psycopg2 driver
    redis_url: str

    @classmethod
    def from_environment(cls, database_name: str) -> Servers:
        server = make_url(os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_SERVER)
        # Only the server and credentials are taken; the database is always the bench's.
        database = server.set(drivername="postgresql+psycopg2", database=database_name)
        return cls(database=database, redis_url=os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL)

    @property
    def database_url(self) -> str:
        url: str = self.database.set(drivername="postgresql").render_as_string(hide_password=False)
        return url

    def describe(self) -> str:
        shown = self.database.set(drivername="postgresql").render_as_string(hide_password=True)
        return f"PostgreSQL {shown}, Redis {redis_display(self.redis_url)}"

    def recreate_database(self) -> None:
        name = self.database.database
        assert name is not None
        admin = create_engine(
            self.database.set(database="postgres"),
            isolation_level="AUTOCOMMIT",
            poolclass=NullPool,
            connect_args={"connect_timeout": 10, "application_name": "conveyor-bench"},
        )
        try:
            with admin.connect() as conn:
                quoted = conn.dialect.identifier_preparer.quote(name)
                # FORCE: a previous run killed mid-way may still hold connections.
                conn.execute(text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
                conn.execute(text(f"CREATE DATABASE {quoted}"))
        finally:
            admin.dispose()
        upgrade(self.database.render_as_string(hide_password=False))

    def flush_redis(self) -> None:
        with redis.Redis.from_url(self.redis_url, socket_timeout=10) as client:
            client.flushdb()


def redis_display(url: str) -> str:
    password = urlsplit(url).password
    return url.replace(f":{password}@", ":***@") if password else url


def check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As uvicorn binds: the previous run's connections in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise BenchError(f"port {port} is in use; choose another with --port") from exc


@dataclass
class Stack:
    """Everything the phases share: options, servers, environment, the clean-up list."""

    options: BenchOptions
    servers: Servers
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(36))
    groups: list[LoggedGroup] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "ENVIRONMENT": self.options.environment,
            "SECRET_KEY": self.secret_key,
            "DATABASE_URL": self.servers.database_url,
            "REDIS_URL": self.servers.redis_url,
            # BROKER_URL wins over REDIS_URL; pin it to the Redis database just flushed.
            "BROKER_URL": self.servers.redis_url,
            # One token serves the whole run, however long --timeout lets it be.
            "ACCESS_TOKEN_MINUTES": "1440",
            # Logging in is not lifted: the bench logs in once a run, on a flushed Redis.
            "RESET_LIMIT_PER_IP": UNTHROTTLED,
            "RESET_LIMIT_PER_ACCOUNT": UNTHROTTLED,
            # With --environment dev, email.send writes each reset email to DATA_DIR's
            # outbox: keep them out of the one `conveyor dev` users read codes from.
            "DATA_DIR": str(REPO_ROOT / LOG_DIR),
            "PYTHONUNBUFFERED": "1",
        }

    def settings(self) -> Settings:
        env = self.env()
        return Settings(
            environment=env["ENVIRONMENT"],
            secret_key=env["SECRET_KEY"],
            database_url=env["DATABASE_URL"],
            redis_url=env["REDIS_URL"],
            broker_url=env["BROKER_URL"],
        )

    @contextmanager
    def group(self) -> Iterator[LoggedGroup]:
        log_dir = REPO_ROOT / LOG_DIR
        log_dir.mkdir(parents=True, exist_ok=True)
        group = LoggedGroup(
            env=self.env(), cwd=str(REPO_ROOT), quiet=not self.options.verbose, log_dir=log_dir
        )
        self.groups.append(group)
        try:
            yield group
        finally:
            group.stop()


# --- statistics ------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """Linear interpolation between the closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def ms(seconds: float, digits: int = 1) -> str:
    return f"{seconds * 1000:.{digits}f} ms"


@dataclass(frozen=True)
class CeleryResult:
    tasks: int
    publish_seconds: float
    total_seconds: float
    cpu: cpu.Usage | None

    @property
    def per_second(self) -> float:
        return self.tasks / self.total_seconds


@dataclass(frozen=True)
class PipelineResult:
    jobs: int
    submit_seconds: float
    submit_latencies: list[float]
    total_seconds: float
    job_latencies: list[float]
    cpu: cpu.Usage | None

    @property
    def per_second(self) -> float:
        return self.jobs / self.total_seconds


@dataclass(frozen=True)
class RequestsResult:
    label: str
    seconds: float
    latencies: list[float]
    cpu: cpu.Usage | None = None

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.seconds

    def describe(self) -> str:
        return (
            f"{self.label:<24} {len(self.latencies)} requests in {self.seconds:.2f} s "
            f"-> {self.per_second:8.1f} req/s  (p50 {ms(percentile(self.latencies, 0.5))}, "
            f"p95 {ms(percentile(self.latencies, 0.95))})"
        )


@dataclass(frozen=True)
class PollResult:
    health: RequestsResult
    job: RequestsResult

    @property
    def ratio(self) -> float:
        return self.job.per_second / self.health.per_second


# --- phase 1: bare Celery ----------------------------------------------------------------


def _wait_noop_batch(
    client: redis.Redis, counter: str, group: LoggedGroup, timeout: float
) -> float:
    """The worker's clock when the batch's last task ran."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        group.check_alive()
        stamp = client.get(noop_done_key(counter))
        if stamp is not None:
            return float(stamp)
        time.sleep(0.005)
    done = int(client.get(counter) or 0)
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


def measure_celery(stack: Stack) -> CeleryResult:
    opts = stack.options
    settings = stack.settings()
    app = create_celery(settings, "conveyor-bench-client")
    with (
        redis.Redis.from_url(stack.servers.redis_url, socket_timeout=10) as client,
        stack.group() as group,
    ):
        group.start(
            "noop", celery_worker_argv("tests.bench.noop", "bench-noop", opts.worker_concurrency)
        )
        say(f"celery: warming up with {opts.warmup} no-op tasks (includes worker start-up)")
        _noop_batch(app, client, group, "warmup", opts.warmup, opts.concurrency, STARTUP_SECONDS)
        say(f"celery: timing {opts.jobs} no-op tasks")
        before = cpu.snapshot(time.monotonic())
        started, published, finished = _noop_batch(
            app, client, group, "timed", opts.jobs, opts.concurrency, opts.timeout
        )
        used = cpu.usage(before, cpu.snapshot(time.monotonic()), _roots(group), opts.database_name)
    app.close()
    return CeleryResult(
        tasks=opts.jobs, publish_seconds=published, total_seconds=finished - started, cpu=used
    )


def _roots(group: ProcessGroup) -> dict[str, int]:
    return {name: proc.pid for name, proc in group.procs.items()}


@dataclass(frozen=True)
class ResetResult:
    registered: list[float]
    unregistered: list[float]
    cpu: cpu.Usage | None

    @property
    def ratio(self) -> float:
        return percentile(self.registered, 0.5) / percentile(self.unregistered, 0.5)

    def describe(self) -> str:
        def figures(latencies: list[float]) -> str:
            p50, p90 = percentile(latencies, 0.5), percentile(latencies, 0.9)
            return f"p50 {ms(p50, 2)}, p90 {ms(p90, 2)}"

        return (
            f"{len(self.registered)} each, one in flight: registered email "
            f"{figures(self.registered)}; unregistered {figures(self.unregistered)}"
        )


# --- phases 2, 3 and 4: the pipeline, polling, password reset ----------------------------


async def run_concurrently(
    count: int, concurrency: int, timeout: float, call: Callable[[int], Awaitable[T]]
) -> tuple[list[T], list[float], float]:
    """Run `call(0..count-1)` with `concurrency` in flight; returns the results in
    order, each call's latency, and the elapsed time."""
    results: list[T | None] = [None] * count
    latencies = [0.0] * count
    indexes = iter(range(count))

    async def lane() -> None:
        # One shared iterator: each lane takes the next index when it is free.
        for i in indexes:
            start = time.perf_counter()
            results[i] = await call(i)
            latencies[i] = time.perf_counter() - start

    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout), asyncio.TaskGroup() as tasks:
            for _ in range(min(concurrency, count)):
                tasks.create_task(lane())
    except TimeoutError as exc:
        raise BenchError(f"{count} requests did not finish within {timeout:.0f} s") from exc
    except ExceptionGroup as group:
        raise _first_error(group) from None
    elapsed = time.perf_counter() - started
    return [r for r in results if r is not None], latencies, elapsed


def _first_error(group: BaseExceptionGroup[Exception]) -> Exception:
    first = group.exceptions[0]
    if isinstance(first, BaseExceptionGroup):
        return _first_error(first)
    if isinstance(first, httpx.HTTPError):
        return BenchError(f"HTTP request failed: {type(first).__name__}: {first}")
    return first


def _expect(response: httpx.Response, status: int) -> httpx.Response:
    if response.status_code != status:
        raise BenchError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}, expected {status}: {response.text[:300]}"
        )
    return response


async def wait_ready(client: httpx.AsyncClient, group: LoggedGroup) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    last = "no answer"
    while time.monotonic() < deadline:
        group.check_alive()
        try:
            response = await client.get("/readyz", timeout=5.0)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.TransportError as exc:
            last = type(exc).__name__
        await asyncio.sleep(0.2)
    raise BenchError(f"the api was not ready after {STARTUP_SECONDS:.0f} s: {last}")


def _bench_email(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@bench.conveyor.dev"


async def register(client: httpx.AsyncClient, email: str, password: str) -> None:
    _expect(
        await client.post("/api/v1/auth/register", json={"email": email, "password": password}),
        201,
    )


async def log_in(client: httpx.AsyncClient) -> str:
    email = _bench_email("bench")
    password = secrets.token_urlsafe(18)
    await register(client, email, password)
    response = _expect(
        await client.post("/api/v1/auth/login", data={"username": email, "password": password}),
        200,
    )
    token: str = response.json()["access_token"]
    return token


async def submit_jobs(
    client: httpx.AsyncClient, label: str, count: int, opts: BenchOptions
) -> tuple[list[uuid.UUID], list[float], float]:
    async def submit(i: int) -> uuid.UUID:
        response = await client.post(
            "/api/v1/jobs", json={"kind": ECHO, "input": {"bench": label, "seq": i}}
        )
        return uuid.UUID(_expect(response, 202).json()["id"])

    return await run_concurrently(count, opts.concurrency, opts.timeout, submit)


def _in_batch(label: str) -> ColumnElement[bool]:
    # Selected by the label in their input, not by a list of ids: a 2000-id IN list ten
    # times a second would be load on PostgreSQL that the bench then measures.
    matches: ColumnElement[bool] = Job.input["bench"].astext == label
    return matches


async def wait_jobs_finished(
    db: Engine, label: str, count: int, group: LoggedGroup, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        group.check_alive()
        with db.connect() as conn:
            rows = conn.execute(
                select(Job.status, func.count()).where(_in_batch(label)).group_by(Job.status)
            ).all()
        counts = {status: n for status, n in rows}
        if sum(n for status, n in counts.items() if status in TERMINAL) == count:
            unsuccessful = count - counts.get(JobStatus.SUCCEEDED, 0)
            if unsuccessful:
                raise BenchError(
                    f"{unsuccessful} jobs did not succeed: {counts} {_an_error(db, label)}"
                )
            return
        await asyncio.sleep(POLL_INTERVAL_SECONDS)
    raise BenchError(f"jobs not finished after {timeout:.0f} s: {counts}")


def _an_error(db: Engine, label: str) -> str:
    with db.connect() as conn:
        error = conn.execute(
            select(Job.error).where(_in_batch(label), Job.error.is_not(None)).limit(1)
        ).scalar_one_or_none()
    return f"(for example {error})" if error else ""


def job_timings(db: Engine, label: str, count: int) -> tuple[float, list[float]]:
    """The last `finished_at` (epoch seconds) and each job's created → finished."""
    with db.connect() as conn:
        rows = conn.execute(select(Job.created_at, Job.finished_at).where(_in_batch(label))).all()
    finished = [row.finished_at for row in rows if row.finished_at is not None]
    if len(finished) != count:
        raise BenchError(f"{count} jobs submitted, {len(finished)} with a finished_at")
    latencies = [(row.finished_at - row.created_at).total_seconds() for row in rows]
    return max(finished).timestamp(), latencies


async def time_requests(
    client: httpx.AsyncClient,
    label: str,
    paths: Sequence[str],
    count: int,
    opts: BenchOptions,
    roots: dict[str, int],
) -> RequestsResult:
    cycle = list(itertools.islice(itertools.cycle(paths), count))

    async def get(i: int) -> bool:
        _expect(await client.get(cycle[i]), 200)
        return True

    before = cpu.snapshot(time.monotonic())
    _, latencies, elapsed = await run_concurrently(count, opts.concurrency, opts.timeout, get)
    used = cpu.usage(before, cpu.snapshot(time.monotonic()), roots, opts.database_name)
    return RequestsResult(label=label, seconds=elapsed, latencies=latencies, cpu=used)


def _merge(label: str, parts: Sequence[RequestsResult]) -> RequestsResult:
    return RequestsResult(
        label=label,
        seconds=sum(p.seconds for p in parts),
        latencies=[lat for p in parts for lat in p.latencies],
        cpu=cpu.combine([p.cpu for p in parts]),
    )


def reset_order(count: int) -> list[bool]:
    """Which of 2 * count requests are for the registered email: pairs in turn
    registered-first and unregistered-first (R U U R R U ...), so each kind follows each
    kind equally often. With plain alternation every unregistered request would follow a
    registered one, and any of that request's work still running past the pause would
    slow only unregistered requests."""
    return [(i % 2 == 0) == (i // 2 % 2 == 0) for i in range(2 * count)]


async def time_resets(
    client: httpx.AsyncClient, registered: str, count: int, timeout: float
) -> tuple[list[float], list[float]]:
    # Every address is made before the clock starts; each has the same length, so the
    # two kinds of request differ in nothing but whether the account exists.
    requests = [
        (known, registered if known else _bench_email("reset")) for known in reset_order(count)
    ]
    latencies: dict[bool, list[float]] = {True: [], False: []}
    try:
        async with asyncio.timeout(timeout):
            for known, email in requests:
                start = time.perf_counter()
                response = await client.post(
                    "/api/v1/auth/password-reset/request", json={"email": email}
                )
                latencies[known].append(time.perf_counter() - start)
                _expect(response, 202)
                await asyncio.sleep(RESET_PAUSE_SECONDS)
    except TimeoutError as exc:
        raise BenchError(
            f"{2 * count} reset requests did not finish within {timeout:.0f} s"
        ) from exc
    except httpx.HTTPError as exc:
        raise BenchError(f"HTTP request failed: {type(exc).__name__}: {exc}") from exc
    return latencies[True], latencies[False]


async def measure_resets(
    client: httpx.AsyncClient, opts: BenchOptions, roots: dict[str, int]
) -> ResetResult:
    registered = _bench_email("reset")
    await register(client, registered, secrets.token_urlsafe(18))
    say(
        f"reset: warming up, then timing {opts.reset_requests} requests for a registered "
        "email and as many for unregistered ones"
    )
    await time_resets(client, registered, opts.warmup, opts.timeout)
    before = cpu.snapshot(time.monotonic())
    known, unknown = await time_resets(client, registered, opts.reset_requests, opts.timeout)
    used = cpu.usage(before, cpu.snapshot(time.monotonic()), roots, opts.database_name)
    return ResetResult(registered=known, unregistered=unknown, cpu=used)


async def drive_stack(
    stack: Stack, group: LoggedGroup, db: Engine
) -> tuple[PipelineResult, PollResult, ResetResult]:
    opts = stack.options
    limits = httpx.Limits(
        max_connections=opts.concurrency, max_keepalive_connections=opts.concurrency
    )
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{opts.port}", limits=limits, timeout=HTTP_TIMEOUT_SECONDS
    ) as client:
        await wait_ready(client, group)
        client.headers["Authorization"] = f"Bearer {await log_in(client)}"

        say(f"pipeline: warming up with {opts.warmup} jobs (includes worker start-up)")
        await submit_jobs(client, "warmup", opts.warmup, opts)
        await wait_jobs_finished(db, "warmup", opts.warmup, group, STARTUP_SECONDS)

        say(f"pipeline: timing {opts.jobs} jobs")
        before = cpu.snapshot(time.monotonic())
        started = time.time()
        ids, submit_latencies, submit_seconds = await submit_jobs(client, "timed", opts.jobs, opts)
        await wait_jobs_finished(db, "timed", opts.jobs, group, opts.timeout)
        pipeline_cpu = cpu.usage(
            before, cpu.snapshot(time.monotonic()), _roots(group), opts.database_name
        )
        last_finished, job_latencies = job_timings(db, "timed", opts.jobs)
        pipeline = PipelineResult(
            jobs=opts.jobs,
            submit_seconds=submit_seconds,
            submit_latencies=submit_latencies,
            total_seconds=last_finished - started,
            job_latencies=job_latencies,
            cpu=pipeline_cpu,
        )

        job_paths = [f"/api/v1/jobs/{job_id}" for job_id in ids]
        say(f"poll: warming up, then timing {opts.poll_requests} requests of each endpoint")
        roots = _roots(group)
        await time_requests(client, "warm-up", ["/healthz"], opts.warmup, opts, roots)
        await time_requests(client, "warm-up", job_paths, opts.warmup, opts, roots)
        health: list[RequestsResult] = []
        job: list[RequestsResult] = []
        first_half = opts.poll_requests // 2
        for count in (first_half, opts.poll_requests - first_half):
            health.append(
                await time_requests(client, "GET /healthz", ["/healthz"], count, opts, roots)
            )
            job.append(
                await time_requests(client, "GET /api/v1/jobs/{id}", job_paths, count, opts, roots)
            )
        poll = PollResult(
            health=_merge("GET /healthz", health), job=_merge("GET /api/v1/jobs/{id}", job)
        )
        reset = await measure_resets(client, opts, roots)
    return pipeline, poll, reset


def _start_storage(stack: Stack, group: LoggedGroup) -> S3Target:
    # Imported here: tests.bench.s3 builds on this module.
    from core.storage.s3 import S3Storage
    from tests.bench.s3 import start_s3

    target = start_s3(group)
    if target.moto:
        settings = target.settings(
            environment=stack.options.environment, secret_key=stack.secret_key
        )
        S3Storage(settings).ensure_bucket()
    return target


def measure_stack(stack: Stack) -> tuple[PipelineResult, PollResult, ResetResult]:
    opts = stack.options
    db = create_engine(
        stack.servers.database,
        pool_size=1,
        connect_args={"connect_timeout": 10, "application_name": "conveyor-bench"},
    )
    try:
        with stack.group() as group:
            # In production the api refuses to start without object storage, and
            # /readyz checks it, though no job here touches it.
            storage = _start_storage(stack, group)
            group.env = {**group.env, **storage.overrides}
            group.start(
                "api",
                _python_module(
                    "uvicorn",
                    "api.main:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(opts.port),
                    "--workers",
                    str(opts.api_workers),
                ),
            )
            group.start(
                "worker", celery_worker_argv("worker.app", "bench-worker", opts.worker_concurrency)
            )
            return asyncio.run(drive_stack(stack, group, db))
    finally:
        db.dispose()


# --- report ----------------------------------------------------------------------------


def report(
    celery: CeleryResult, pipeline: PipelineResult, poll: PollResult, reset: ResetResult
) -> None:
    ratio = pipeline.per_second / celery.per_second
    lines = [
        "",
        "celery no-op baseline",
        f"  {celery.tasks} tasks published in {celery.publish_seconds:.2f} s, all executed "
        f"after {celery.total_seconds:.2f} s -> {celery.per_second:.1f} tasks/s",
        *_cpu_line(celery.cpu, celery.tasks, "task"),
        "pipeline (POST /api/v1/jobs -> diagnostics.echo succeeded)",
        f"  {pipeline.jobs} jobs submitted in {pipeline.submit_seconds:.2f} s "
        f"({pipeline.jobs / pipeline.submit_seconds:.1f} req/s, "
        f"p50 {ms(percentile(pipeline.submit_latencies, 0.5))}, "
        f"p95 {ms(percentile(pipeline.submit_latencies, 0.95))}), "
        f"all succeeded after {pipeline.total_seconds:.2f} s -> {pipeline.per_second:.1f} jobs/s",
        f"  submit -> finished latency: p50 {ms(percentile(pipeline.job_latencies, 0.5))}, "
        f"p95 {ms(percentile(pipeline.job_latencies, 0.95))}",
        *_cpu_line(pipeline.cpu, pipeline.jobs, "job"),
        "polling (same client, same concurrency)",
        f"  {poll.health.describe()}",
        *_cpu_line(poll.health.cpu, len(poll.health.latencies), "request"),
        f"  {poll.job.describe()}",
        *_cpu_line(poll.job.cpu, len(poll.job.latencies), "request"),
        "password reset request (POST /api/v1/auth/password-reset/request)",
        f"  {reset.describe()}",
        *_cpu_line(reset.cpu, len(reset.registered) + len(reset.unregistered), "request"),
        f"pipeline / celery = {ratio:.3f}   job GET / healthz = {poll.ratio:.3f}   "
        "(goal: both >= 0.5)",
        *_cost_ratios(celery, pipeline, poll),
        f"reset_timing_ratio={reset.ratio:.3f}",
        f"pipeline_jobs_per_s={pipeline.per_second:.2f} "
        f"celery_tasks_per_s={celery.per_second:.2f} "
        f"ratio={ratio:.3f} poll_ratio={poll.ratio:.3f}",
    ]
    say("\n".join(lines))


def _cost_ratios(celery: CeleryResult, pipeline: PipelineResult, poll: PollResult) -> list[str]:
    """The same comparison by CPU per unit, which a busy neighbour moves far less than
    a rate; and the ratio a job would reach if it cost no more than a bare HTTP request
    (`GET /healthz`, client included) plus a no-op task: a ceiling set by the client,
    the web stack and Celery before any job is stored."""
    if celery.cpu is None or pipeline.cpu is None or poll.health.cpu is None:
        return []
    task = celery.cpu.ours() / celery.tasks
    job = pipeline.cpu.ours() / pipeline.jobs
    request = poll.health.cpu.ours() / len(poll.health.latencies)
    return [
        f"by cpu: no-op task / job = {task / job:.3f}   "
        f"no-op task / (healthz request + no-op task) = {task / (task + request):.3f}"
    ]


# Above this share of the machine used by unrelated processes, a figure is flagged.
DISTURBED_SHARE = 0.10


def _cpu_line(usage: cpu.Usage | None, count: int, unit: str) -> list[str]:
    if usage is None:
        return []
    lines = [f"  {usage.describe_cost(count, unit)}", f"  {usage.describe()}"]
    if usage.others_share > DISTURBED_SHARE:
        lines.append(
            f"  WARNING: other processes used {usage.others_share:.0%} of the machine during "
            "this phase; the figure is lower than on a quiet machine"
        )
    return lines


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    # SIGTERM takes the same way out as Ctrl-C, through every `finally` that stops processes.
    raise KeyboardInterrupt


def main(opts: BenchOptions) -> int:
    servers = Servers.from_environment(opts.database_name)
    stack = Stack(options=opts, servers=servers)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        check_port_free(opts.port)
        say(
            f"conveyor bench: {opts.jobs} jobs, client concurrency {opts.concurrency}, "
            f"worker concurrency {opts.worker_concurrency} (prefork), api workers "
            f"{opts.api_workers}, environment {opts.environment}"
        )
        say(f"  {servers.describe()}; {os.cpu_count()} cores, load {_load()}")
        say(f"  process output in {REPO_ROOT / LOG_DIR}/")
        say("preparing: fresh database, migrations, empty Redis database")
        servers.recreate_database()
        servers.flush_redis()
        celery = measure_celery(stack)
        pipeline, poll, reset = measure_stack(stack)
    except BenchError as exc:
        for group in stack.groups:
            group.print_tails()
        say(f"bench failed: {exc}")
        return 1
    except Exception as exc:  # a server refused or went away: still stop cleanly, say why
        traceback.print_exc()
        for group in stack.groups:
            group.print_tails()
        say(f"bench failed: {type(exc).__name__}: {exc}")
        return 1
    except KeyboardInterrupt:
        say("bench interrupted; everything it started has been stopped")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    report(celery, pipeline, poll, reset)
    return 0


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"
