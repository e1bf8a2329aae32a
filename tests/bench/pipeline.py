"""`make bench`, the run: prepare the servers, run each phase, print the figures.

Phases, in this order, each with its own warm-up:

1. celery (celery_baseline.py): a no-op worker alone.
2. pipeline (job_throughput.py) against its peer (peer.py, the FastAPI + Celery stack
   of the tutorials, running beside it) and the durable peer (the same stack keeping
   each task in a PostgreSQL row): alternating rounds of jobs submitted over HTTP.
3. batch (job_throughput.py): the pipeline fed by POST /api/v1/jobs/batch; then each
   peer fed by its own POST /tasks/batch (peer.py).
4. poll (polling.py): GET /healthz, GET /api/v1/jobs/{id} and the peers' GET /tasks/{id}.
5. reset (reset_timing.py): on the same stack, password reset requests one at a time.
6. metrics (metrics_cost.py): the pipeline again, metrics off and on, alternating.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from sqlalchemy import Engine

from tests.bench.api_client import HTTP_TIMEOUT_SECONDS, api_url, sign_in_when_ready
from tests.bench.autovacuum import autovacuum_on
from tests.bench.celery_baseline import measure_celery
from tests.bench.failures import failures_explained
from tests.bench.job_throughput import (
    PipelineResult,
    measure_batch,
    measure_jobs,
    start_pipeline,
)
from tests.bench.metrics_cost import measure_metrics_cost
from tests.bench.options import PipelineOptions
from tests.bench.output import say
from tests.bench.peer import Peer, measure_peer, measure_peer_batch, start_peer, wait_peer_ready
from tests.bench.pipeline_report import StackResults, report
from tests.bench.polling import measure_polling
from tests.bench.reset_timing import UNTHROTTLED_ENV, measure_resets
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
    opts: PipelineOptions, group: LoggedGroup, db: Engine, peer: Peer, durable: Peer
) -> StackResults:
    limits = httpx.Limits(
        max_connections=opts.concurrency, max_keepalive_connections=opts.concurrency
    )
    async with httpx.AsyncClient(
        base_url=api_url(opts.port), limits=limits, timeout=HTTP_TIMEOUT_SECONDS
    ) as client:
        await sign_in_when_ready(client, group)
        for each in (peer, durable):
            await wait_peer_ready(each.client, group)
            say(f"{each.name}: warming up with {opts.warmup} tasks (includes worker start-up)")
            await measure_peer(each, group, opts, f"{each.name}:warmup", opts.warmup)
        pipeline: list[PipelineResult] = []
        peers: list[PipelineResult] = []
        durables: list[PipelineResult] = []
        # Alternating rounds, so drift on a noisy machine favours neither stack.
        for round_ in range(opts.rounds):
            result, job_ids = await measure_jobs(client, db, group, opts, f"pipeline-{round_}")
            pipeline.append(result)
            say(f"peer: timing {opts.jobs} tasks (round {round_ + 1} of {opts.rounds})")
            peer_result, task_ids = await measure_peer(
                peer, group, opts, f"peer-{round_}", opts.jobs
            )
            peers.append(peer_result)
            say(f"durable-peer: timing {opts.jobs} tasks (round {round_ + 1} of {opts.rounds})")
            durable_result, durable_ids = await measure_peer(
                durable, group, opts, f"durable-peer-{round_}", opts.jobs
            )
            durables.append(durable_result)
        batch = await measure_batch(client, db, group, opts)
        say(f"peer: timing {opts.jobs} tasks in batches")
        peer_batch = await measure_peer_batch(peer, group, opts, "peer:batch", opts.jobs)
        say(f"durable-peer: timing {opts.jobs} tasks in batches")
        durable_batch = await measure_peer_batch(
            durable, group, opts, "durable-peer:batch", opts.jobs
        )
        roots = group.roots()
        poll = await measure_polling(
            client, job_ids, peer.client, task_ids, durable.client, durable_ids, opts, roots
        )
        reset = await measure_resets(client, opts, roots)
    await peer.client.aclose()
    await durable.client.aclose()
    return StackResults(pipeline, peers, durables, batch, peer_batch, durable_batch, poll, reset)


def measure_stack(stack: Stack, opts: PipelineOptions) -> StackResults:
    db = stack.servers.engine(pool_size=1)
    try:
        with stack.group() as group:
            start_pipeline(stack, opts, group)
            peer = start_peer(stack, opts, group)
            durable = start_peer(stack, opts, group, durable=True)
            return asyncio.run(drive_stack(opts, group, db, peer, durable))
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
        with autovacuum_on(stack.servers.admin_engine()):
            stack.servers.prepare()
            celery = measure_celery(stack, opts)
            results = measure_stack(stack, opts)
            metrics = measure_metrics_cost(stack, opts)
    if outcome.code:
        return outcome.code
    report(celery, results, metrics)
    return 0
