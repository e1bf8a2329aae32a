"""The jobs' metrics, read from PostgreSQL at each scrape: what waits and runs
(`core.jobs.backlog`), and what finished and how long it took (`core.jobs.totals`).
Every API process reads the same rows, so any of them answers a scrape alike."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from core.db import Database, limit_waits
from core.jobs.backlog import ACTIVE, read_backlog
from core.jobs.contracts import KINDS, Queue
from core.jobs.states import WaitingReason
from core.jobs.totals import BUCKETS, FINISHED, Counted, Durations, Outcomes, Totals, read_totals

log = logging.getLogger("conveyor.api")


class JobsCollector(Collector):
    """The jobs' metrics, read from PostgreSQL at each scrape: what waits and runs
    (`core.jobs.backlog`), and what finished and how long it took (`core.jobs.totals`)."""

    def __init__(self, db: Database, top_tenants: int) -> None:
        self._db = db
        self._top_tenants = top_tenants

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "conveyor_metrics_database_up",
            "1 if this scrape could read the jobs from PostgreSQL; the job metrics are "
            "missing from a scrape that could not.",
        )
        try:
            with self._db.transaction() as session:
                # One snapshot for every figure, and a scrape that gives up rather than
                # hold a connection the API's requests need.
                session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
                limit_waits(session, lock_timeout_ms=1000, statement_timeout_ms=5000)
                counted = read_totals(session)
                backlog = read_backlog(session, self._top_tenants)
        except Exception as exc:
            log.warning("metrics: jobs not read (%s)", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up

        jobs = GaugeMetricFamily(
            "conveyor_jobs",
            "Jobs queued or running, by kind, queue and status.",
            labels=["kind", "queue", "status"],
        )
        counts = backlog.jobs.copy()
        for kind in KINDS.values():  # every series present, zeros included
            for status in ACTIVE:
                counts.setdefault((kind.name, kind.queue.value, status.value), 0)
        for (kind_name, queue, state), count in sorted(counts.items()):
            jobs.add_metric([kind_name, queue, state], count)
        yield jobs

        oldest = GaugeMetricFamily(
            "conveyor_queue_oldest_age_seconds",
            "How long the oldest job sent to each queue has waited for a worker (0 if none).",
            labels=["queue"],
        )
        for queue in sorted({q.value for q in Queue} | set(backlog.oldest_age)):
            oldest.add_metric([queue], backlog.oldest_age.get(queue, 0.0))
        yield oldest

        tenants = GaugeMetricFamily(
            "conveyor_tenant_jobs",
            "Jobs queued or running per tenant: the busiest by id, the rest as `other`, "
            "jobs of no tenant (account email) as `system`.",
            labels=["tenant", "status"],
        )
        for (tenant, state), count in sorted(backlog.tenants.items()):
            tenants.add_metric([tenant, state], count)
        yield tenants

        waiting = GaugeMetricFamily(
            "conveyor_jobs_waiting",
            "Queued jobs by queue and why they wait: scheduled (run_after ahead), "
            "tenant_limit (in their tenant's line for a slot), broker (sent).",
            labels=["queue", "reason"],
        )
        by_reason = backlog.waiting.copy()
        for q in Queue:
            for r in WaitingReason:
                by_reason.setdefault((q.value, r.value), 0)
        for (queue, why), count in sorted(by_reason.items()):
            waiting.add_metric([queue, why], count)
        yield waiting

        tenants_waiting = GaugeMetricFamily(
            "conveyor_tenant_jobs_waiting",
            "Queued jobs per tenant (as conveyor_tenant_jobs) and why they wait.",
            labels=["tenant", "reason"],
        )
        for (tenant, why), count in sorted(backlog.tenants_waiting.items()):
            tenants_waiting.add_metric([tenant, why], count)
        yield tenants_waiting
        yield from _totals(counted)


def _totals(counted: Totals) -> Iterator[Metric]:
    finished = CounterMetricFamily(
        "conveyor_jobs_finished",
        "Jobs that finished, by kind and outcome (succeeded, failed, cancelled).",
        labels=["kind", "outcome"],
    )
    retries = CounterMetricFamily(
        "conveyor_job_retries",
        "Attempts after the first, of finished jobs: retries after an error and takeovers "
        "after a lost worker.",
        labels=["kind"],
    )
    by_kind: dict[str, Outcomes] = {name: Outcomes() for name in KINDS}
    finished_jobs = dict(counted.finished)
    for kind in KINDS:
        for status in FINISHED:
            finished_jobs.setdefault((kind, status.value), Outcomes())
    for (kind, outcome), outcomes in sorted(finished_jobs.items()):
        finished.add_metric([kind, outcome], outcomes.jobs)
        by_kind.setdefault(kind, Outcomes()).add(outcomes)
    yield finished
    for kind, outcomes in sorted(by_kind.items()):
        retries.add_metric([kind], outcomes.retries)
    yield retries
    for name, help_text, waits in (
        (
            "conveyor_job_queue_wait_seconds",
            "From when a finished job's last attempt was due (submitted, or its run_after) "
            "to its start.",
            True,
        ),
        ("conveyor_job_run_seconds", "From a finished job's last start to its end.", False),
    ):
        histogram = HistogramMetricFamily(name, help_text, labels=["kind"])
        for kind, outcomes in sorted(by_kind.items()):
            observed: Durations = outcomes.wait if waits else outcomes.run
            buckets = [
                (_le(bound), float(n)) for bound, n in zip(BUCKETS, observed.buckets, strict=True)
            ]
            buckets.append(("+Inf", float(observed.count)))
            histogram.add_metric([kind], buckets, observed.sum)
        yield histogram
    for name, what, help_text in (
        (
            "conveyor_reconciler_republished",
            Counted.REPUBLISHED,
            "Messages the reconciler sent for queued jobs: failed publishes, due retries, "
            "lost messages, jobs taken back.",
        ),
        (
            "conveyor_lease_takeovers",
            Counted.LEASE_TAKEOVERS,
            "Running jobs taken back from a dead worker (lease expired, or its process died).",
        ),
    ):
        counter = CounterMetricFamily(name, help_text)
        counter.add_metric([], counted.counted.get(what.value, 0))
        yield counter
    last_run = GaugeMetricFamily(
        "conveyor_maintenance_last_run_timestamp_seconds",
        "When beat's reconciler and housekeeping last ran (Unix time).",
        labels=["task"],
    )
    last_ok = GaugeMetricFamily(
        "conveyor_maintenance_last_run_success",
        "1 if the task's last run went well, 0 if it failed.",
        labels=["task"],
    )
    for task, (at, ok) in sorted(counted.runs.items()):
        last_run.add_metric([task], at.timestamp())
        last_ok.add_metric([task], 1 if ok else 0)
    yield last_run
    yield last_ok


def _le(bound: float) -> str:
    return f"{bound:g}" if bound != int(bound) else f"{bound:.1f}"
