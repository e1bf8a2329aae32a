"""Counts of what jobs did, kept in PostgreSQL: the counters and histograms the metrics
report, the same from every API process, and never going back when rows are deleted.

A finished job is counted from its own row until beat rolls it up into `job_totals`
(`roll_up`, every `ROLLUP_INTERVAL_SECONDS`); a scrape adds the rows finished since
the last roll-up (through the index on `finished_at`) to the totals, in one snapshot.
Rolled-up rows may then be deleted (retention, a deleted tenant) without the counts
going down. The roll-up stops `ROLLUP_MARGIN` short of now: a job's `finished_at` is
its transaction's start, and a row committed after the roll-up passed it would be
missed; every transaction that finishes jobs is far shorter than the margin. Counting
starts when the totals were made (the migration): jobs finished before are not counted.

Beat's recovery also counts what it did (`count`), and notes each maintenance run
(`record_run`): one small write per round.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Float, Select, case, cast, func, or_, select
from sqlalchemy.dialects.postgresql import ARRAY, array, insert
from sqlalchemy.orm import Session

from core.jobs.states import JobStatus
from core.models import Job, JobCounter, JobTotals, MaintenanceRun, MetricsRollup

# Durations bounds, in seconds, for queue waits and run times: from an echo to an hour.
# Stored counts are per bound, so changing these needs the totals reset.
BUCKETS = (
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
)
ROLLUP_INTERVAL_SECONDS = 15.0
# Longer than any transaction that finishes jobs lasts (single statements, or the
# reconciler's bounded batches): a row stamped before the roll-up's bound commits first.
ROLLUP_MARGIN = timedelta(seconds=60)
FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class Counted(StrEnum):
    REPUBLISHED = "republished"  # messages the reconciler sent again (or first)
    # Jobs taken back from a dead worker: requeued, or failed with no attempts left.
    LEASE_TAKEOVERS = "lease_takeovers"


@dataclass
class Durations:
    count: int = 0
    sum: float = 0.0
    # Cumulative: how many observations were at most each of BUCKETS.
    buckets: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))

    def add(self, count: int, total: float, buckets: list[int]) -> None:
        self.count += count
        self.sum += total
        self.buckets = _plus(self.buckets, buckets)


@dataclass
class Outcomes:
    jobs: int = 0
    retries: int = 0
    wait: Durations = field(default_factory=Durations)
    run: Durations = field(default_factory=Durations)

    def add(self, other: Outcomes) -> None:
        self.jobs += other.jobs
        self.retries += other.retries
        self.wait.add(other.wait.count, other.wait.sum, other.wait.buckets)
        self.run.add(other.run.count, other.run.sum, other.run.buckets)


@dataclass
class Totals:
    # (kind, outcome) → finished jobs
    finished: dict[tuple[str, str], Outcomes] = field(default_factory=lambda: defaultdict(Outcomes))
    counted: dict[str, int] = field(default_factory=dict)
    # task → (when it last ran, whether that run went well)
    runs: dict[str, tuple[datetime, bool]] = field(default_factory=dict)


def read_totals(session: Session) -> Totals:
    """Everything counted so far. In a REPEATABLE READ transaction (`snapshot`), the
    totals and the rows not yet rolled up are read as one snapshot: a roll-up that
    commits in between cannot count a job twice or not at all."""
    totals = Totals()
    for row in session.scalars(select(JobTotals)):
        totals.finished[(row.kind, row.outcome)].add(
            Outcomes(
                row.jobs,
                row.retries,
                Durations(row.started, row.wait_sum, list(row.wait_buckets)),
                Durations(row.started, row.run_sum, list(row.run_buckets)),
            )
        )
    through = session.scalar(select(MetricsRollup.through))
    since = () if through is None else (Job.finished_at >= through,)
    for key, outcomes in _aggregate(session, *since).items():
        totals.finished[key].add(outcomes)
    totals.counted = {row.name: row.total for row in session.scalars(select(JobCounter))}
    totals.runs = {
        row.task: (row.last_run_at, row.ok) for row in session.scalars(select(MaintenanceRun))
    }
    return totals


def roll_up(session: Session) -> int:
    """Count the jobs that finished since the last roll-up into `job_totals`; returns
    how many. Safe to run from two processes: the roll-up row is locked first."""
    # The migration makes the row (counting starts then). Should it be gone, every
    # finished row is counted, as `read_totals` does without it.
    beginning = datetime.min.replace(tzinfo=UTC)
    session.execute(insert(MetricsRollup).values(id=1, through=beginning).on_conflict_do_nothing())
    mark = session.scalars(select(MetricsRollup).with_for_update()).one()
    until = session.scalar(select(func.now() - ROLLUP_MARGIN))
    assert until is not None
    if until <= mark.through:
        return 0
    counted = 0
    for (kind, outcome), recent in _aggregate(
        session, Job.finished_at >= mark.through, Job.finished_at < until
    ).items():
        row = session.get(JobTotals, (kind, outcome), with_for_update=True)
        if row is None:
            row = JobTotals(
                kind=kind,
                outcome=outcome,
                jobs=0,
                retries=0,
                started=0,
                wait_sum=0.0,
                wait_buckets=[0] * len(BUCKETS),
                run_sum=0.0,
                run_buckets=[0] * len(BUCKETS),
            )
            session.add(row)
        row.jobs += recent.jobs
        row.retries += recent.retries
        row.started += recent.wait.count
        row.wait_sum += recent.wait.sum
        row.wait_buckets = _plus(row.wait_buckets, recent.wait.buckets)
        row.run_sum += recent.run.sum
        row.run_buckets = _plus(row.run_buckets, recent.run.buckets)
        counted += recent.jobs
    mark.through = until
    return counted


def count(session: Session, what: Counted, n: int = 1) -> None:
    if n:
        statement = insert(JobCounter).values(name=what.value, total=n)
        session.execute(
            statement.on_conflict_do_update(
                index_elements=[JobCounter.name], set_={"total": JobCounter.total + n}
            )
        )


def record_run(session: Session, task: str, *, ok: bool) -> None:
    statement = insert(MaintenanceRun).values(task=task, last_run_at=func.now(), ok=ok)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[MaintenanceRun.task],
            set_={"last_run_at": statement.excluded.last_run_at, "ok": statement.excluded.ok},
        )
    )


def _plus(a: list[int], b: list[int]) -> list[int]:
    return [x + y for x, y in zip(a, b, strict=True)]


def _aggregate(session: Session, *where: ColumnElement[bool]) -> dict[tuple[str, str], Outcomes]:
    found: dict[tuple[str, str], Outcomes] = defaultdict(Outcomes)
    for row in session.execute(_aggregate_statement(*where)).all():
        kind, outcome, wait_bucket, run_bucket, jobs, retries, wait_sum, run_sum = row
        outcomes = found[(kind, outcome)]
        outcomes.jobs += jobs
        outcomes.retries += int(retries)
        if wait_bucket is not None:  # it started
            outcomes.wait.add(jobs, float(wait_sum), _cumulative(wait_bucket, jobs))
            outcomes.run.add(jobs, float(run_sum), _cumulative(run_bucket, jobs))
    return dict(found)


def _cumulative(bucket: int, count: int) -> list[int]:
    """`count` observations in `bucket`, as cumulative counts over BUCKETS."""
    return [count if bucket <= index else 0 for index in range(len(BUCKETS))]


def _bucket(seconds: ColumnElement[Any]) -> ColumnElement[int]:
    """The index of the first of BUCKETS at least `seconds` long (len(BUCKETS) past the
    last), as Prometheus's `le` counts: width_bucket, on the negated value, counts the
    bounds at least as long."""
    bounds = cast(array([-bound for bound in reversed(BUCKETS)]), ARRAY(Float))
    at_least: ColumnElement[int] = func.width_bucket(-cast(seconds, Float), bounds)
    return len(BUCKETS) - at_least


def _aggregate_statement(*where: ColumnElement[bool]) -> Select[Any]:
    """Per kind, outcome and histogram bucket: jobs, retries, and the seconds waited and
    run by the jobs that started (a job cancelled while queued has neither: its buckets
    are NULL). Grouping by bucket costs far less than counting each bucket apart."""
    due_at = func.coalesce(Job.queued_at, Job.created_at)
    started = Job.started_at.is_not(None)
    # NULL for a job that never started (GREATEST alone would make that 0).
    wait = case((started, func.greatest(func.extract("epoch", Job.started_at - due_at), 0)))
    run = case((started, func.greatest(func.extract("epoch", Job.finished_at - Job.started_at), 0)))
    wait_bucket, run_bucket = _bucket(wait).label("wait_bucket"), _bucket(run).label("run_bucket")
    return (
        select(
            Job.kind,
            Job.status,
            wait_bucket,
            run_bucket,
            func.count(),
            func.coalesce(func.sum(func.greatest(Job.attempts - 1, 0)), 0),
            func.coalesce(func.sum(wait), 0),
            func.coalesce(func.sum(run), 0),
        )
        .where(or_(*(Job.status == status for status in FINISHED)), *where)
        .group_by(Job.kind, Job.status, wait_bucket, run_bucket)
    )
