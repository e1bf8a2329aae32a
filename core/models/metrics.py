"""Running totals behind the job metrics (`core.jobs.totals`): they outlive the rows
they count, which retention and tenant deletion remove."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, DateTime, Float, SmallInteger, String
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base

TZDateTime = DateTime(timezone=True)


class JobTotals(Base):
    """Finished jobs counted so far, per kind and outcome: the ones that finished before
    `MetricsRollup.through`. A bucket array holds, for each bound of
    `core.jobs.totals.BUCKETS`, how many were at most that long (cumulative)."""

    __tablename__ = "job_totals"

    kind: Mapped[str] = mapped_column(String(100), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16), primary_key=True)
    jobs: Mapped[int] = mapped_column(BigInteger)
    # Attempts after the first: retries after an error, and takeovers after a lost worker.
    retries: Mapped[int] = mapped_column(BigInteger)
    # Of the jobs, those that started (a job cancelled while queued did not): the
    # histograms' count.
    started: Mapped[int] = mapped_column(BigInteger)
    # From when the last attempt was due (submit, or its run_after) to its start.
    wait_sum: Mapped[float] = mapped_column(Float)
    wait_buckets: Mapped[list[int]] = mapped_column(ARRAY(BigInteger))
    # From the last attempt's start to the end.
    run_sum: Mapped[float] = mapped_column(Float)
    run_buckets: Mapped[list[int]] = mapped_column(ARRAY(BigInteger))


class MetricsRollup(Base):
    """The one row saying up to when finished jobs are counted in `job_totals`."""

    __tablename__ = "metrics_rollup"
    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    through: Mapped[datetime] = mapped_column(TZDateTime)


class MaintenanceRun(Base):
    """The last run of beat's reconciler and of housekeeping, and what they did."""

    __tablename__ = "maintenance_runs"

    task: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_run_at: Mapped[datetime] = mapped_column(TZDateTime)
    ok: Mapped[bool] = mapped_column(Boolean)


class JobCounter(Base):
    """Counts of what the job protocol's recovery did (`core.jobs.totals.Counted`)."""

    __tablename__ = "job_counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    total: Mapped[int] = mapped_column(BigInteger)
