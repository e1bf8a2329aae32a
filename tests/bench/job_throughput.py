"""Phase 2 of `make bench`, the pipeline: N `diagnostics.echo` jobs submitted over HTTP,
timed from the first submit to the last `finished_at`; each job's latency is
`created_at → finished_at`."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import httpx
from sqlalchemy import ColumnElement, Engine, func, select

from core.jobs.contracts import ECHO
from core.jobs.states import TERMINAL, JobStatus
from core.models import Job
from tests.bench import cpu
from tests.bench.api_client import expect
from tests.bench.autovacuum import analyze
from tests.bench.failures import BenchError
from tests.bench.http_load import run_concurrently
from tests.bench.options import PipelineOptions
from tests.bench.output import say
from tests.bench.s3 import storage_for_api
from tests.bench.stack import (
    STARTUP_SECONDS,
    LoggedGroup,
    Stack,
    api_argv,
    celery_beat_argv,
    celery_worker_argv,
)

POLL_INTERVAL_SECONDS = 0.25


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


async def submit_jobs(
    client: httpx.AsyncClient, label: str, count: int, opts: PipelineOptions
) -> tuple[list[uuid.UUID], list[float], float]:
    async def submit(i: int) -> uuid.UUID:
        response = await client.post(
            "/api/v1/jobs", json={"kind": ECHO, "input": {"bench": label, "seq": i}}
        )
        return uuid.UUID(expect(response, 202).json()["id"])

    return await run_concurrently(count, opts.concurrency, opts.timeout, submit)


# Jobs per `POST /api/v1/jobs/batch` in the batch phase, and batches in flight.
BATCH_SIZE = 100
BATCHES_IN_FLIGHT = 4


async def submit_batches(
    client: httpx.AsyncClient, label: str, count: int, opts: PipelineOptions
) -> float:
    """`count` jobs in batches of BATCH_SIZE; returns the seconds it took."""
    batches = [
        range(start, min(start + BATCH_SIZE, count)) for start in range(0, count, BATCH_SIZE)
    ]

    async def submit(i: int) -> None:
        items = [{"kind": ECHO, "input": {"bench": label, "seq": n}} for n in batches[i]]
        answered = expect(await client.post("/api/v1/jobs/batch", json={"jobs": items}), 202)
        refused = [item for item in answered.json()["items"] if "error" in item]
        if refused:
            raise BenchError(f"batch items refused: {refused[0]['error']}")

    _, _, elapsed = await run_concurrently(len(batches), BATCHES_IN_FLIGHT, opts.timeout, submit)
    return elapsed


async def measure_batch(
    client: httpx.AsyncClient, db: Engine, group: LoggedGroup, opts: PipelineOptions
) -> PipelineResult:
    """The pipeline fed by `POST /api/v1/jobs/batch`: from the first batch sent to the
    last job finished."""
    warmup, timed = "batch:warmup", "batch:timed"
    say(f"batch: warming up with {opts.warmup} jobs, then timing {opts.jobs} in batches")
    await submit_batches(client, warmup, opts.warmup, opts)
    await wait_jobs_finished(db, warmup, opts.warmup, group, STARTUP_SECONDS)
    analyze(db)
    before = cpu.snapshot(time.monotonic())
    started = time.time()
    submit_seconds = await submit_batches(client, timed, opts.jobs, opts)
    await wait_jobs_finished(db, timed, opts.jobs, group, opts.timeout)
    used = cpu.usage(before, cpu.snapshot(time.monotonic()), group.roots(), opts.database_name)
    last_finished, job_latencies = job_timings(db, timed, opts.jobs)
    return PipelineResult(
        jobs=opts.jobs,
        submit_seconds=submit_seconds,
        submit_latencies=[],
        total_seconds=last_finished - started,
        job_latencies=job_latencies,
        cpu=used,
    )


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


def start_pipeline(stack: Stack, opts: PipelineOptions, group: LoggedGroup) -> None:
    """The api, the job worker and beat, in `group`, as a user runs them."""
    # In production the api refuses to start without object storage, and /readyz
    # checks it, though no job here touches it.
    storage_for_api(group, opts.environment, stack.secret_key)
    group.start("api", api_argv(opts.port, opts.api_workers))
    group.start("worker", celery_worker_argv("worker.app", "bench-worker", opts.worker_concurrency))
    group.start("beat", celery_beat_argv(stack.log_path / "celerybeat-schedule"))


async def measure_jobs(
    client: httpx.AsyncClient,
    db: Engine,
    group: LoggedGroup,
    opts: PipelineOptions,
    batch: str = "pipeline",
    jobs: int | None = None,
) -> tuple[PipelineResult, list[uuid.UUID]]:
    """The timed batch's result, and its jobs' ids for the polling phase. `batch` names
    the run's jobs apart from other runs' on the same database; `jobs`: how many to
    time (`opts.jobs`)."""
    count = jobs or opts.jobs
    warmup, timed = f"{batch}:warmup", f"{batch}:timed"
    say(f"{batch}: warming up with {opts.warmup} jobs (includes worker start-up)")
    await submit_jobs(client, warmup, opts.warmup, opts)
    await wait_jobs_finished(db, warmup, opts.warmup, group, STARTUP_SECONDS)
    analyze(db)

    say(f"{batch}: timing {count} jobs")
    before = cpu.snapshot(time.monotonic())
    started = time.time()
    ids, submit_latencies, submit_seconds = await submit_jobs(client, timed, count, opts)
    await wait_jobs_finished(db, timed, count, group, opts.timeout)
    used = cpu.usage(before, cpu.snapshot(time.monotonic()), group.roots(), opts.database_name)
    last_finished, job_latencies = job_timings(db, timed, count)
    result = PipelineResult(
        jobs=count,
        submit_seconds=submit_seconds,
        submit_latencies=submit_latencies,
        total_seconds=last_finished - started,
        job_latencies=job_latencies,
        cpu=used,
    )
    return result, ids
