"""The peer of `make bench`: the FastAPI + Celery stack of the tutorials (peer_app.py),
run beside Conveyor's on the same machine, with the same client, concurrency, uvicorn
and Celery settings, on a Redis database of its own (its broker and result backend).

A round submits N no-op tasks over HTTP and waits until every one has a result; it is
timed from the first submit to the last task's `date_done`."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

import httpx
import redis

from tests.bench import cpu
from tests.bench.api_client import HTTP_TIMEOUT_SECONDS, api_url, expect
from tests.bench.failures import BenchError
from tests.bench.http_load import run_concurrently
from tests.bench.job_throughput import BATCH_SIZE, BATCHES_IN_FLIGHT, PipelineResult
from tests.bench.options import PipelineOptions
from tests.bench.peer_app import create_table
from tests.bench.stack import (
    STARTUP_SECONDS,
    LoggedGroup,
    Stack,
    api_argv,
    celery_worker_argv,
)

READY_CHECK_SECONDS = 0.2
RESULT_KEY = "celery-task-meta-{}"
CHUNK = 500


@dataclass(frozen=True)
class Peer:
    client: httpx.AsyncClient
    results: redis.Redis
    name: str  # "peer", or "durable-peer" for the one that keeps its tasks in PostgreSQL


def peer_redis_url(redis_url: str, offset: int = 1) -> str:
    """A database after the bench's own: a peer's broker and result backend."""
    parts = urlsplit(redis_url)
    db = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(db + offset) % 16}"))


def start_peer(
    stack: Stack, opts: PipelineOptions, group: LoggedGroup, *, durable: bool = False
) -> Peer:
    """A peer's api and worker in `group`, and a client of it. `durable`: the peer that
    also keeps its tasks in the bench's PostgreSQL database (peer_app.py)."""
    name = "durable-peer" if durable else "peer"
    offset = 2 if durable else 1
    url = peer_redis_url(stack.servers.redis_url, offset)
    with redis.Redis.from_url(url, socket_timeout=10) as client:
        client.flushdb()
    token = secrets.token_urlsafe(24)
    port = opts.port + 10 * offset
    database = {"PEER_DATABASE_URL": stack.servers.database_url} if durable else {}
    if durable:
        create_table(stack.servers.database_url)
    ours = group.env
    # Celery takes BROKER_URL from the environment over the app's own: the peer's
    # processes get an environment without Conveyor's.
    group.env = {
        **{name: value for name, value in ours.items() if name != "BROKER_URL"},
        "PEER_BROKER_URL": url,
        "PEER_TOKEN": token,
        **database,
    }
    try:
        app = "tests.bench.peer_app:app"
        group.start(f"{name}-api", api_argv(port, opts.api_workers, app=app))
        worker = celery_worker_argv(
            "tests.bench.peer_app:celery", f"{name}-worker", opts.worker_concurrency, queues="peer"
        )
        group.start(f"{name}-worker", worker)
    finally:
        group.env = ours
    limits = httpx.Limits(
        max_connections=opts.concurrency, max_keepalive_connections=opts.concurrency
    )
    client = httpx.AsyncClient(
        base_url=api_url(port),
        limits=limits,
        timeout=HTTP_TIMEOUT_SECONDS,
        headers={"Authorization": f"Bearer {token}"},
    )
    return Peer(client, redis.Redis.from_url(url, socket_timeout=10), name)


async def wait_peer_ready(client: httpx.AsyncClient, group: LoggedGroup) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        group.check_alive()
        try:
            if (await client.get("/tasks/none", timeout=5.0)).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(READY_CHECK_SECONDS)
    raise BenchError(f"the peer api was not ready after {STARTUP_SECONDS:.0f} s")


async def submit_tasks(peer: Peer, label: str, count: int, opts: PipelineOptions) -> list[str]:
    async def submit(i: int) -> str:
        response = await peer.client.post("/tasks", json={"bench": label, "seq": i})
        task_id: str = expect(response, 202).json()["task_id"]
        return task_id

    ids, _, _ = await run_concurrently(count, opts.concurrency, opts.timeout, submit)
    return ids


async def submit_task_batches(
    peer: Peer, label: str, count: int, opts: PipelineOptions
) -> list[str]:
    """`count` tasks through `POST /tasks/batch`, in batches as the pipeline's batch
    phase sends them; their ids."""
    batches = [
        range(start, min(start + BATCH_SIZE, count)) for start in range(0, count, BATCH_SIZE)
    ]

    async def submit(i: int) -> list[str]:
        tasks = [{"bench": label, "seq": n} for n in batches[i]]
        response = await peer.client.post("/tasks/batch", json={"tasks": tasks})
        task_ids: list[str] = expect(response, 202).json()["task_ids"]
        return task_ids

    answered, _, _ = await run_concurrently(len(batches), BATCHES_IN_FLIGHT, opts.timeout, submit)
    return [task_id for ids in answered for task_id in ids]


async def last_done(peer: Peer, ids: list[str], group: LoggedGroup, timeout: float) -> float:
    """Epoch seconds of the last task's `date_done`, once every task has a result."""
    deadline = time.monotonic() + timeout
    pending = list(ids)
    latest = 0.0
    while pending:
        if time.monotonic() > deadline:
            raise BenchError(f"peer tasks: {len(pending)} without a result after {timeout:.0f} s")
        group.check_alive()
        still: list[str] = []
        for start in range(0, len(pending), CHUNK):
            chunk = pending[start : start + CHUNK]
            found = peer.results.mget([RESULT_KEY.format(task_id) for task_id in chunk])
            for task_id, raw in zip(chunk, found, strict=True):  # type: ignore[arg-type]
                if raw is None:
                    still.append(task_id)
                    continue
                done = _date_done(raw)
                latest = max(latest, done)
        pending = still
        if pending:
            await asyncio.sleep(0.1)
    return latest


def _date_done(raw: bytes) -> float:
    meta = json.loads(raw)
    if meta.get("status") != "SUCCESS":
        raise BenchError(f"a peer task ended {meta.get('status')}: {meta.get('result')}")
    return datetime.fromisoformat(meta["date_done"]).timestamp()


async def measure_peer(
    peer: Peer, group: LoggedGroup, opts: PipelineOptions, label: str, count: int
) -> tuple[PipelineResult, list[str]]:
    return await _timed(peer, group, opts, submit_tasks(peer, label, count, opts))


async def measure_peer_batch(
    peer: Peer, group: LoggedGroup, opts: PipelineOptions, label: str, count: int
) -> PipelineResult:
    """The peer fed by `POST /tasks/batch`: from the first batch sent to the last task
    done, as the pipeline's batch phase is timed."""
    result, _ = await _timed(peer, group, opts, submit_task_batches(peer, label, count, opts))
    return result


async def _timed(
    peer: Peer, group: LoggedGroup, opts: PipelineOptions, submitting: Awaitable[list[str]]
) -> tuple[PipelineResult, list[str]]:
    """`submitting` run and timed until every task it submitted is done."""
    before = cpu.snapshot(time.monotonic())
    started = time.time()
    ids = await submitting
    submitted = time.time() - started
    finished = await last_done(peer, ids, group, opts.timeout)
    used = cpu.usage(before, cpu.snapshot(time.monotonic()), group.roots(), opts.database_name)
    result = PipelineResult(
        jobs=len(ids),
        submit_seconds=submitted,
        submit_latencies=[],
        total_seconds=finished - started,
        job_latencies=[],
        cpu=used,
    )
    return result, ids
