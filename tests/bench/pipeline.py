"""`make bench`, the run: prepare the servers, run each phase, print the figures.

Phases, in this order, each with its own warm-up:

1. celery (celery_baseline.py): a no-op worker alone.
2. pipeline (job_throughput.py): api + job worker, jobs submitted over HTTP.
3. poll (polling.py): on the same stack, GET /healthz against GET /api/v1/jobs/{id}.
4. reset (reset_timing.py): on the same stack, password reset requests one at a time.
5. metrics (metrics_cost.py): the pipeline again, metrics off and on, alternating.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from sqlalchemy import Engine

from tests.bench.api_client import HTTP_TIMEOUT_SECONDS, api_url, sign_in_when_ready
from tests.bench.celery_baseline import measure_celery
from tests.bench.failures import failures_explained
from tests.bench.job_throughput import PipelineResult, measure_jobs, start_pipeline
from tests.bench.metrics_cost import measure_metrics_cost
from tests.bench.options import PipelineOptions
from tests.bench.output import say
from tests.bench.pipeline_report import report
from tests.bench.polling import PollResult, measure_polling
from tests.bench.reset_timing import UNTHROTTLED_ENV, ResetResult, measure_resets
from tests.bench.stack import (
    LoggedGroup,
    Stack,
    check_port_free,
)

LOG_DIR = Path(".conveyor") / "bench"
# One tenant submits every job of the run, faster than TENANT_SUBMIT_LIMIT's default
# allows: the limit is lifted out of reach, not switched off, so its check is still
# paid on every submit. The caps and the queued-jobs quota stay as a user runs them.
SUBMITS_UNLIMITED = {"TENANT_SUBMIT_LIMIT": str(10**9)}


async def drive_stack(
    opts: PipelineOptions, group: LoggedGroup, db: Engine
) -> tuple[PipelineResult, PollResult, ResetResult]:
    limits = httpx.Limits(
        max_connections=opts.concurrency, max_keepalive_connections=opts.concurrency
    )
    async with httpx.AsyncClient(
        base_url=api_url(opts.port), limits=limits, timeout=HTTP_TIMEOUT_SECONDS
    ) as client:
        await sign_in_when_ready(client, group)
        pipeline, job_ids = await measure_jobs(client, db, group, opts)
        roots = group.roots()
        poll = await measure_polling(client, job_ids, opts, roots)
        reset = await measure_resets(client, opts, roots)
    return pipeline, poll, reset


def measure_stack(
    stack: Stack, opts: PipelineOptions
) -> tuple[PipelineResult, PollResult, ResetResult]:
    db = stack.servers.engine(pool_size=1)
    try:
        with stack.group() as group:
            start_pipeline(stack, opts, group)
            return asyncio.run(drive_stack(opts, group, db))
    finally:
        db.dispose()


def main(opts: PipelineOptions) -> int:
    stack = Stack.for_run(opts, LOG_DIR, {**UNTHROTTLED_ENV, **SUBMITS_UNLIMITED})
    with failures_explained("bench", stack.groups) as outcome:
        check_port_free(opts.port)
        say(
            f"make bench: {opts.jobs} jobs, client concurrency {opts.concurrency}, "
            f"worker concurrency {opts.worker_concurrency} (prefork), api workers "
            f"{opts.api_workers}, environment {opts.environment}"
        )
        stack.say_where()
        stack.servers.prepare()
        celery = measure_celery(stack, opts)
        pipeline, poll, reset = measure_stack(stack, opts)
        metrics = measure_metrics_cost(stack, opts)
    if outcome.code:
        return outcome.code
    report(celery, pipeline, poll, reset, metrics)
    return 0
