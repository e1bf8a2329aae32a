"""What `make bench` prints at the end: each phase's figures, the ratios against the
goals, and last the machine-readable line."""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass

from tests.bench import cpu
from tests.bench.celery_baseline import CeleryResult
from tests.bench.job_throughput import PipelineResult
from tests.bench.metrics_cost import MetricsCost
from tests.bench.output import ms, say
from tests.bench.polling import PollResult
from tests.bench.reset_timing import ResetResult
from tests.bench.stats import percentile


@dataclass(frozen=True)
class StackResults:
    """What one run of the api, its worker and the peer beside them measured."""

    pipeline: list[PipelineResult]  # one per round
    peer: list[PipelineResult]  # one per round, alternating with the pipeline's
    durable_peer: list[PipelineResult]  # the same, for the peer keeping tasks in PostgreSQL
    batch: PipelineResult
    # Each peer fed by its POST /tasks/batch, timed as the batch is.
    peer_batch: PipelineResult
    durable_peer_batch: PipelineResult
    poll: PollResult
    reset: ResetResult


def paired_ratios(ours: list[PipelineResult], theirs: list[PipelineResult]) -> list[float]:
    """Each round's rate over the rate of the other stack's round in the same turn of
    the alternation. On a machine whose speed drifts during a run, both sides of a pair
    move alike; the median rounds of each side could be minutes apart."""
    return [a.per_second / b.per_second for a, b in zip(ours, theirs, strict=True)]


@dataclass(frozen=True)
class RoundRatios:
    """The ratios of the alternating rounds, each the median of its pairs."""

    peer: list[float]  # the pipeline's over the peer's: `peer_ratio`
    durable_peer: list[float]  # the durable peer's over the peer's
    pipeline_vs_durable_peer: list[float]

    @classmethod
    def of(cls, results: StackResults) -> RoundRatios:
        return cls(
            peer=paired_ratios(results.pipeline, results.peer),
            durable_peer=paired_ratios(results.durable_peer, results.peer),
            pipeline_vs_durable_peer=paired_ratios(results.pipeline, results.durable_peer),
        )


def median_round(rounds: list[PipelineResult]) -> PipelineResult:
    """The round with the median rate (the lower middle one of an even number)."""
    ordered = sorted(rounds, key=lambda r: r.per_second)
    return ordered[(len(ordered) - 1) // 2]


def _throughput(label: str, result: PipelineResult, unit: str) -> list[str]:
    submitted = f"{result.jobs} {unit}s submitted in {result.submit_seconds:.2f} s"
    lines = [
        f"  {submitted}, all done after {result.total_seconds:.2f} s "
        f"-> {result.per_second:.1f} {unit}s/s  ({label})"
    ]
    if result.job_latencies:
        lines.append(
            f"  submit -> finished latency: p50 {ms(percentile(result.job_latencies, 0.5))}, "
            f"p95 {ms(percentile(result.job_latencies, 0.95))}"
        )
    return [*lines, *cpu.report_lines(result.cpu, result.jobs, unit)]


def report(celery: CeleryResult, results: StackResults, metrics: MetricsCost) -> None:
    pipeline, peer = median_round(results.pipeline), median_round(results.peer)
    durable = median_round(results.durable_peer)
    poll, reset, batch = results.poll, results.reset, results.batch
    ratio = pipeline.per_second / celery.per_second
    rounds = RoundRatios.of(results)
    peer_ratio = statistics.median(rounds.peer)
    batch_ratio = batch.per_second / peer.per_second
    accepted = batch.jobs / batch.submit_seconds

    def rates(rounds: list[PipelineResult]) -> str:
        return ", ".join(f"{r.per_second:.1f}" for r in rounds)

    lines = [
        "",
        "celery no-op baseline (information)",
        f"  {celery.tasks} tasks published in {celery.publish_seconds:.2f} s, all executed "
        f"after {celery.total_seconds:.2f} s -> {celery.per_second:.1f} tasks/s",
        *cpu.report_lines(celery.cpu, celery.tasks, "task"),
        f"pipeline (POST /api/v1/jobs -> diagnostics.echo succeeded), rounds: "
        f"{rates(results.pipeline)} jobs/s; the median round:",
        *_throughput("median", pipeline, "job"),
        f"peer (the FastAPI + Celery tutorial stack: POST /tasks -> no-op task), rounds: "
        f"{rates(results.peer)} tasks/s; the median round:",
        *_throughput("median", peer, "task"),
        f"  each round's jobs/s over the peer's in the same turn: "
        f"{', '.join(f'{r:.3f}' for r in rounds.peer)} (peer_ratio is their median)",
        f"durable peer (the same stack, each task a PostgreSQL row: inserted before the "
        f"publish, updated at its start and end), rounds: {rates(results.durable_peer)} "
        "tasks/s; the median round:",
        *_throughput("median", durable, "task"),
        "batch (POST /api/v1/jobs/batch, 100 jobs a request, 4 in flight)",
        *_throughput("one run", batch, "job"),
        "peer batch (POST /tasks/batch, the same batches)",
        *_throughput("one run", results.peer_batch, "task"),
        "durable peer batch (POST /tasks/batch, its rows inserted in one statement)",
        *_throughput("one run", results.durable_peer_batch, "task"),
        "polling (same client, same concurrency)",
        f"  {poll.health.describe()}",
        *cpu.report_lines(poll.health.cpu, len(poll.health.latencies), "request"),
        f"  {poll.job.describe()}",
        *cpu.report_lines(poll.job.cpu, len(poll.job.latencies), "request"),
        f"  {poll.peer.describe()}",
        *cpu.report_lines(poll.peer.cpu, len(poll.peer.latencies), "request"),
        f"  {poll.durable_peer.describe()}",
        *cpu.report_lines(poll.durable_peer.cpu, len(poll.durable_peer.latencies), "request"),
        "password reset request (POST /api/v1/auth/password-reset/request)",
        f"  {reset.describe()}",
        *cpu.report_lines(reset.cpu, len(reset.registered) + len(reset.unregistered), "request"),
        *_cost_ratios(celery, pipeline, poll),
        "metrics (the pipeline with metrics off and on, alternating rounds)",
        f"  {metrics.describe()}",
        f"reset_timing_ratio={reset.ratio:.3f}",
        f"metrics_on_off_ratio={metrics.ratio:.3f} metrics_cpu_ratio={metrics.cpu_ratio:.3f}"
        "   (goal: >= 0.95)",
        f"celery_tasks_per_s={celery.per_second:.2f} celery_ratio={ratio:.3f} "
        f"health_poll_ratio={poll.ratio:.3f}   (information: against bare Celery, /healthz)",
        f"durable_peer_jobs_per_s={durable.per_second:.2f} "
        f"durable_peer_ratio={statistics.median(rounds.durable_peer):.3f} "
        f"durable_peer_poll_ratio={poll.durable_peer_ratio:.3f} "
        f"pipeline_vs_durable_peer={statistics.median(rounds.pipeline_vs_durable_peer):.3f}"
        "   (information: the tutorial stack keeping each task in a PostgreSQL row, "
        "against the tutorial stack)",
        f"batch_accepted_jobs_per_s={accepted:.2f} "
        f"batch_accepted_ratio={accepted / peer.per_second:.3f}"
        "   (information: how fast POST /api/v1/jobs/batch takes jobs, against the "
        "peer's tasks/s; batch_ratio below counts until every job has succeeded)",
        f"peer_batch_ratio={results.peer_batch.per_second / peer.per_second:.3f} "
        f"durable_peer_batch_ratio={results.durable_peer_batch.per_second / peer.per_second:.3f}"
        "   (information: each peer's own bulk submit against the peer: how far a batch "
        "drained as one Celery task per job goes, without and with a PostgreSQL row each)",
        *_ceilings(results, peer),
        "goals: peer_ratio >= 0.6, peer_poll_ratio >= 0.8, batch_ratio >= 1.5",
        f"pipeline_jobs_per_s={pipeline.per_second:.2f} "
        f"peer_jobs_per_s={peer.per_second:.2f} "
        f"peer_ratio={peer_ratio:.3f} peer_poll_ratio={poll.peer_ratio:.3f} "
        f"batch_jobs_per_s={batch.per_second:.2f} batch_ratio={batch_ratio:.3f}",
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


def _ceilings(results: StackResults, peer: PipelineResult) -> list[str]:
    """How high `peer_ratio` and `batch_ratio` (and the durable peer's batch ratio)
    could go on this machine at the CPU a job cost in its phase: the phase's rate with
    every core busy on its work alone, over the peer's measured rate. A ratio below its
    ceiling waited on something other than the CPU (a lock, a round trip); a goal above
    it takes a job that costs less, whatever else changes. The pipeline's is the median
    of its rounds, each over the peer's round in the same turn, as `peer_ratio` is."""
    phases = (*results.pipeline, results.batch, results.durable_peer_batch)
    if any(phase.cpu is None or not phase.cpu.ours() for phase in phases):
        return []

    def most_per_second(phase: PipelineResult) -> float:
        assert phase.cpu is not None
        return (os.cpu_count() or 1) * phase.jobs / phase.cpu.ours()

    pipeline = statistics.median(
        most_per_second(ours) / theirs.per_second
        for ours, theirs in zip(results.pipeline, results.peer, strict=True)
    )
    peer_rate = peer.per_second
    return [
        f"ceiling_peer_ratio={pipeline:.3f} "
        f"ceiling_batch_ratio={most_per_second(results.batch) / peer_rate:.3f} "
        "ceiling_durable_peer_batch_ratio="
        f"{most_per_second(results.durable_peer_batch) / peer_rate:.3f}"
        "   (information: each phase with every core busy at its cpu per job, each "
        "round's for the rounds, over the peer's measured tasks/s; the batches' over its "
        "median round)"
    ]
