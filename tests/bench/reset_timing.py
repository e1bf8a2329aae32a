"""Phase 4 of `make bench`, the reset timing check: on the pipeline's stack,
`POST /api/v1/auth/password-reset/request` one at a time, for a registered email and for
unregistered ones in turn, with a pause after each. Its ratio (median registered /
median unregistered) says whether the response time tells that an email has an account.

Last, because each request for the registered email queues an `email.send` job (which
fails in production, with no SMTP_HOST) that must not share the worker with the timed
pipeline."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass

import httpx

from tests.bench import cpu
from tests.bench.api_client import bench_email, expect, register
from tests.bench.failures import BenchError
from tests.bench.http_load import request_failed
from tests.bench.options import PipelineOptions
from tests.bench.output import ms, say
from tests.bench.stats import percentile

# The phase sends thousands of requests from one IP, for one email; the api's throttle
# would answer most of them 429, so it is lifted far above any run's count. Logging in
# is not lifted: the bench logs in once a run, on a flushed Redis.
UNTHROTTLED = str(10**9)
UNTHROTTLED_ENV = {"RESET_LIMIT_PER_IP": UNTHROTTLED, "RESET_LIMIT_PER_ACCOUNT": UNTHROTTLED}
# A reset request's work goes on after its response: the lookup and, for a registered
# email, a code, a job and the worker running it (about 15-25 ms on a 2-core machine).
# Sent back to back, that work would slow whichever request came next; the pause lets it
# finish, so each request is timed on an idle stack.
RESET_PAUSE_SECONDS = 0.05


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
        (known, registered if known else bench_email("reset")) for known in reset_order(count)
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
                expect(response, 202)
                await asyncio.sleep(RESET_PAUSE_SECONDS)
    except TimeoutError as exc:
        raise BenchError(
            f"{2 * count} reset requests did not finish within {timeout:.0f} s"
        ) from exc
    except httpx.HTTPError as exc:
        raise request_failed(exc) from exc
    return latencies[True], latencies[False]


async def measure_resets(
    client: httpx.AsyncClient, opts: PipelineOptions, roots: dict[str, int]
) -> ResetResult:
    registered = bench_email("reset")
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
