"""Phase 5 of `make bench`: what the metrics cost. The pipeline of phase 2, in
alternating rounds on the same servers: metrics off (`METRICS_ENABLED=false`), then on,
with a scraper reading `GET /metrics` every 5 s (three times Prometheus's common 15 s),
and so on. Each round starts its own api, worker and beat. Two figures: the median
rate with metrics on over the median with them off, and the same for the CPU each job
cost (every process of the run, the scraper included), which a busy neighbour moves
far less than a rate."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import statistics
import time
from dataclasses import dataclass, field, replace

import httpx

from tests.bench.api_client import HTTP_TIMEOUT_SECONDS, api_url, expect, sign_in_when_ready
from tests.bench.job_throughput import PipelineResult, measure_jobs, start_pipeline
from tests.bench.options import PipelineOptions
from tests.bench.output import say
from tests.bench.stack import LoggedGroup, Stack

ROUNDS = 3  # each way
SCRAPE_INTERVAL_SECONDS = 5.0


@dataclass
class MetricsCost:
    off: list[float] = field(default_factory=list)  # jobs/s, per round
    on: list[float] = field(default_factory=list)
    cpu_off: list[float] = field(default_factory=list)  # cpu-ms per job, per round
    cpu_on: list[float] = field(default_factory=list)
    scrape_seconds: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return statistics.median(self.on) / statistics.median(self.off)

    @property
    def cpu_ratio(self) -> float:
        """CPU per job with metrics off over with them on: 1.0 means they cost nothing."""
        if not self.cpu_on or not self.cpu_off:
            return float("nan")
        return statistics.median(self.cpu_off) / statistics.median(self.cpu_on)

    def describe(self) -> str:
        rounds = ", ".join(f"{v:.1f}" for v in self.off)
        on = ", ".join(f"{v:.1f}" for v in self.on)
        scrape = statistics.median(self.scrape_seconds) * 1000 if self.scrape_seconds else 0.0
        cpu_off = ", ".join(f"{v:.2f}" for v in self.cpu_off)
        cpu_on = ", ".join(f"{v:.2f}" for v in self.cpu_on)
        return (
            f"metrics off: {rounds} jobs/s; on, scraped every {SCRAPE_INTERVAL_SECONDS:g} s: "
            f"{on} jobs/s ({len(self.scrape_seconds)} scrapes, median {scrape:.1f} ms)\n"
            f"  cpu-ms per job: off {cpu_off}; on {cpu_on}"
        )


def measure_metrics_cost(stack: Stack, opts: PipelineOptions) -> MetricsCost:
    cost = MetricsCost()
    jobs = max(opts.jobs // 2, 100)
    token = secrets.token_urlsafe(24)
    for round_number in range(ROUNDS):
        for enabled in (False, True):
            env = {"METRICS_ENABLED": str(enabled).lower(), "METRICS_TOKEN": token}
            run = replace(stack, extra_env={**stack.extra_env, **env})
            with run.group() as group:
                start_pipeline(run, opts, group)
                batch = f"metrics-{'on' if enabled else 'off'}-{round_number}"
                result = asyncio.run(
                    _round(run, opts, group, batch, jobs, token if enabled else None, cost)
                )
            (cost.on if enabled else cost.off).append(result.per_second)
            if result.cpu is not None:
                cpu_ms = result.cpu.ours() * 1000 / result.jobs
                (cost.cpu_on if enabled else cost.cpu_off).append(cpu_ms)
    return cost


async def _round(
    stack: Stack,
    opts: PipelineOptions,
    group: LoggedGroup,
    batch: str,
    jobs: int,
    token: str | None,
    cost: MetricsCost,
) -> PipelineResult:
    db = stack.servers.engine(pool_size=1)
    limits = httpx.Limits(
        max_connections=opts.concurrency, max_keepalive_connections=opts.concurrency
    )
    try:
        async with httpx.AsyncClient(
            base_url=api_url(opts.port), limits=limits, timeout=HTTP_TIMEOUT_SECONDS
        ) as client:
            await sign_in_when_ready(client, group)
            scraper = asyncio.create_task(_scrape(opts, token, cost)) if token else None
            try:
                result, _ = await measure_jobs(client, db, group, opts, batch, jobs)
            finally:
                if scraper is not None:
                    scraper.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await scraper
    finally:
        db.dispose()
    say(f"{batch}: {result.per_second:.1f} jobs/s")
    return result


async def _scrape(opts: PipelineOptions, token: str, cost: MetricsCost) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=api_url(opts.port), timeout=HTTP_TIMEOUT_SECONDS
    ) as client:
        while True:
            started = time.perf_counter()
            expect(await client.get("/metrics", headers=headers), 200)
            cost.scrape_seconds.append(time.perf_counter() - started)
            await asyncio.sleep(SCRAPE_INTERVAL_SECONDS)
