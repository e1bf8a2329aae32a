"""Phase 3 of `make bench`, polling: on the pipeline's stack, `GET /healthz` and
`GET /api/v1/jobs/{id}` alternately in two rounds of half the requests each, so drift
favours neither."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from tests.bench import cpu
from tests.bench.api_client import expect
from tests.bench.http_load import run_concurrently
from tests.bench.options import PipelineOptions
from tests.bench.output import ms, say
from tests.bench.stats import percentile


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
    # The tutorial stack's `GET /tasks/{id}` (peer_app.py).
    peer: RequestsResult
    # The same, reading the task's row from PostgreSQL (the durable peer).
    durable_peer: RequestsResult

    @property
    def ratio(self) -> float:
        return self.job.per_second / self.health.per_second

    @property
    def peer_ratio(self) -> float:
        return self.job.per_second / self.peer.per_second

    @property
    def durable_peer_ratio(self) -> float:
        return self.durable_peer.per_second / self.peer.per_second


async def time_requests(
    client: httpx.AsyncClient,
    label: str,
    paths: Sequence[str],
    count: int,
    opts: PipelineOptions,
    roots: dict[str, int],
) -> RequestsResult:
    cycle = list(itertools.islice(itertools.cycle(paths), count))

    async def get(i: int) -> bool:
        expect(await client.get(cycle[i]), 200)
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


async def measure_polling(
    client: httpx.AsyncClient,
    job_ids: Sequence[uuid.UUID],
    peer_client: httpx.AsyncClient,
    task_ids: Sequence[str],
    durable_client: httpx.AsyncClient,
    durable_ids: Sequence[str],
    opts: PipelineOptions,
    roots: dict[str, int],
) -> PollResult:
    job_paths = [f"/api/v1/jobs/{job_id}" for job_id in job_ids]
    task_paths = [f"/tasks/{task_id}" for task_id in task_ids]
    durable_paths = [f"/tasks/{task_id}" for task_id in durable_ids]
    say(f"poll: warming up, then timing {opts.poll_requests} requests of each endpoint")
    await time_requests(client, "warm-up", ["/healthz"], opts.warmup, opts, roots)
    await time_requests(client, "warm-up", job_paths, opts.warmup, opts, roots)
    await time_requests(peer_client, "warm-up", task_paths, opts.warmup, opts, roots)
    await time_requests(durable_client, "warm-up", durable_paths, opts.warmup, opts, roots)
    health: list[RequestsResult] = []
    job: list[RequestsResult] = []
    peer: list[RequestsResult] = []
    durable: list[RequestsResult] = []
    first_half = opts.poll_requests // 2
    for count in (first_half, opts.poll_requests - first_half):
        health.append(await time_requests(client, "GET /healthz", ["/healthz"], count, opts, roots))
        job.append(
            await time_requests(client, "GET /api/v1/jobs/{id}", job_paths, count, opts, roots)
        )
        peer.append(
            await time_requests(peer_client, "peer GET /tasks/{id}", task_paths, count, opts, roots)
        )
        durable.append(
            await time_requests(durable_client, "durable", durable_paths, count, opts, roots)
        )
    return PollResult(
        health=_merge("GET /healthz", health),
        job=_merge("GET /api/v1/jobs/{id}", job),
        peer=_merge("peer GET /tasks/{id}", peer),
        durable_peer=_merge("durable peer GET /tasks", durable),
    )
