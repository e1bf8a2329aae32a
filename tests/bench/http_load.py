"""HTTP load: one call after another in each of `concurrency` lanes, each call timed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx

from tests.bench.failures import BenchError

T = TypeVar("T")


def request_failed(exc: httpx.HTTPError) -> BenchError:
    return BenchError(f"HTTP request failed: {type(exc).__name__}: {exc}")


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
        return request_failed(first)
    return first
