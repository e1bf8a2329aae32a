"""What `make bench` prints at the end: each phase's figures, the ratios against the
goals, and last the machine-readable line."""

from __future__ import annotations

from tests.bench import cpu
from tests.bench.celery_baseline import CeleryResult
from tests.bench.job_throughput import PipelineResult
from tests.bench.metrics_cost import MetricsCost
from tests.bench.output import ms, say
from tests.bench.polling import PollResult
from tests.bench.reset_timing import ResetResult
from tests.bench.stats import percentile


def report(
    celery: CeleryResult,
    pipeline: PipelineResult,
    poll: PollResult,
    reset: ResetResult,
    metrics: MetricsCost,
) -> None:
    ratio = pipeline.per_second / celery.per_second
    lines = [
        "",
        "celery no-op baseline",
        f"  {celery.tasks} tasks published in {celery.publish_seconds:.2f} s, all executed "
        f"after {celery.total_seconds:.2f} s -> {celery.per_second:.1f} tasks/s",
        *cpu.report_lines(celery.cpu, celery.tasks, "task"),
        "pipeline (POST /api/v1/jobs -> diagnostics.echo succeeded)",
        f"  {pipeline.jobs} jobs submitted in {pipeline.submit_seconds:.2f} s "
        f"({pipeline.jobs / pipeline.submit_seconds:.1f} req/s, "
        f"p50 {ms(percentile(pipeline.submit_latencies, 0.5))}, "
        f"p95 {ms(percentile(pipeline.submit_latencies, 0.95))}), "
        f"all succeeded after {pipeline.total_seconds:.2f} s -> {pipeline.per_second:.1f} jobs/s",
        f"  submit -> finished latency: p50 {ms(percentile(pipeline.job_latencies, 0.5))}, "
        f"p95 {ms(percentile(pipeline.job_latencies, 0.95))}",
        *cpu.report_lines(pipeline.cpu, pipeline.jobs, "job"),
        "polling (same client, same concurrency)",
        f"  {poll.health.describe()}",
        *cpu.report_lines(poll.health.cpu, len(poll.health.latencies), "request"),
        f"  {poll.job.describe()}",
        *cpu.report_lines(poll.job.cpu, len(poll.job.latencies), "request"),
        "password reset request (POST /api/v1/auth/password-reset/request)",
        f"  {reset.describe()}",
        *cpu.report_lines(reset.cpu, len(reset.registered) + len(reset.unregistered), "request"),
        f"pipeline / celery = {ratio:.3f}   job GET / healthz = {poll.ratio:.3f}   "
        "(goal: both >= 0.5)",
        *_cost_ratios(celery, pipeline, poll),
        "metrics (the pipeline with metrics off and on, alternating rounds)",
        f"  {metrics.describe()}",
        f"reset_timing_ratio={reset.ratio:.3f}",
        f"metrics_on_off_ratio={metrics.ratio:.3f} metrics_cpu_ratio={metrics.cpu_ratio:.3f}"
        "   (goal: >= 0.95)",
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
