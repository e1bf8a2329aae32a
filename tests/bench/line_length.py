"""`make bench-lines`: what a hand-off costs as a tenant's line of waiting jobs grows
(see options.py)."""

from __future__ import annotations

import secrets
import statistics
import time
import uuid

from sqlalchemy import text

from core.db import Database
from core.jobs import dispatch, lifecycle
from core.jobs.batch import MAX_BATCH_JOBS
from core.jobs.contracts import ECHO
from core.settings import Settings
from tests.bench.failures import BenchError, failures_explained
from tests.bench.options import LineOptions
from tests.bench.output import say
from tests.bench.stack import Servers

CAP = 10
QUEUE = "default"
LEASE_SECONDS = 60
# Hand-offs timed between two top-ups of a line.
TOP_UP = 10
SHORT_LINE = 100


def _tenant(db: Database, name: str) -> uuid.UUID:
    tenant_id = uuid.uuid4()
    with db.autocommit() as connection:
        connection.execute(
            text("INSERT INTO tenants (id, name) VALUES (:id, :name)"),
            {"id": tenant_id, "name": name},
        )
    return tenant_id


def _insert_jobs(db: Database, tenant_id: uuid.UUID, count: int, *, finished: bool) -> None:
    """`count` jobs of the tenant's, waiting in its line or finished. Waiting ones come
    in batches as `POST /api/v1/jobs/batch` takes them: up to MAX_BATCH_JOBS a statement,
    which share the moment they joined the line (its transaction's `now()`)."""
    status, finished_at = ("'succeeded'", "now()") if finished else ("'queued'", "NULL")
    per_statement = count if finished else MAX_BATCH_JOBS
    with db.autocommit() as connection:
        for start in range(0, count, per_statement):
            connection.execute(
                text(
                    "INSERT INTO jobs (id, tenant_id, kind, queue, status, input,"
                    f" max_attempts, queued_at, finished_at) SELECT gen_random_uuid(),"
                    f" :tenant, :kind, :queue, {status}, '{{}}', 1, now(), {finished_at}"
                    " FROM generate_series(1, :count)"
                ),
                {
                    "tenant": tenant_id,
                    "kind": ECHO,
                    "queue": QUEUE,
                    "count": min(per_statement, count - start),
                },
            )


class Line:
    """A tenant whose line holds `length` waiting jobs, its slots full: each hand-off
    takes the line's first job, and the line is topped up between timed stretches, so
    every hand-off is timed on a line of `length` (give or take `TOP_UP`)."""

    def __init__(self, db: Database, length: int) -> None:
        self.db = db
        self.length = length
        self.tenant_id = _tenant(db, f"line of {length}")
        _insert_jobs(db, self.tenant_id, length + CAP, finished=False)
        with db.autocommit() as connection:
            sent = dispatch.dispatch_line(connection, self.tenant_id, QUEUE, CAP)
        self.running = [message.job_id for message in sent]

    def hand_off(self, count: int) -> float:
        """Seconds per hand-off, over `count` made on one connection as a worker makes
        them: the claim of a job given a slot, then its success, which hands it on."""
        line = (self.tenant_id, QUEUE)
        timed = 0.0
        with self.db.autocommit() as connection:
            for start in range(0, count, TOP_UP):
                stretch = min(TOP_UP, count - start)
                started = time.perf_counter()
                for _ in range(stretch):
                    job_id = self.running.pop(0)
                    claim = lifecycle.claim(connection, job_id, LEASE_SECONDS, "bench/1/0")
                    if claim is None:
                        raise BenchError(f"job {job_id} could not be claimed")
                    _, handed_on = dispatch.succeed_handing_on(
                        connection, job_id, claim.attempt, {}, line, CAP
                    )
                    self.running += [message.job_id for message in handed_on]
                timed += time.perf_counter() - started
                _insert_jobs(self.db, self.tenant_id, stretch, finished=False)
        return timed / count


def _database(servers: Servers) -> Database:
    servers.recreate_database()
    settings = Settings(
        environment="dev",
        secret_key=secrets.token_urlsafe(36),
        database_url=servers.database_url,
        redis_url=servers.redis_url,
    )
    return Database(settings, "bench-lines")


def _autovacuum(db: Database, on: bool) -> None:
    """Off while the table must stay without statistics; back on, as it runs."""
    setting = "RESET (autovacuum_enabled)" if on else "SET (autovacuum_enabled = off)"
    with db.autocommit() as connection:
        connection.execute(text(f"ALTER TABLE jobs {setting}"))


def _analyze(db: Database) -> None:
    """As autovacuum would: the planner knows how long the lines are."""
    with db.autocommit() as connection:
        connection.execute(text("ANALYZE jobs"))


def _timed(lines: list[Line], opts: LineOptions) -> list[list[float]]:
    """ms per hand-off of each line, a figure per round."""
    for line in lines:  # each statement prepared, the caches warm
        line.hand_off(opts.hand_offs)
    taken: list[list[float]] = [[] for _ in lines]
    for _ in range(opts.rounds):  # alternating, so a slow moment hits each of them
        for figures, line in zip(taken, lines, strict=True):
            figures.append(line.hand_off(opts.hand_offs) * 1000)
    return taken


def _report(stats: str, lines: list[Line], taken: list[list[float]]) -> float:
    """Print the figures; return the long line's cost over the short one's."""
    say(stats)
    for line, figures in zip(lines, taken, strict=True):
        rounds = ", ".join(f"{value:.2f}" for value in figures)
        say(
            f"  a line of {line.length}: {statistics.median(figures):.2f} ms per hand-off "
            f"(rounds: {rounds})"
        )
    return statistics.median(taken[-1]) / statistics.median(taken[0])


def main(opts: LineOptions) -> int:
    say(
        f"make bench-lines: lines of {SHORT_LINE} and {opts.length} waiting jobs beside "
        f"{opts.history} finished ones; {opts.hand_offs} hand-offs a round, {opts.rounds} "
        "rounds"
    )
    servers = Servers.from_environment(opts.database_name)
    say(f"  {servers.describe()}")
    with failures_explained("bench-lines", []) as outcome:
        db = _database(servers)
        try:
            _autovacuum(db, on=False)  # no statistics until the second phase
            _insert_jobs(db, _tenant(db, "history"), opts.history, finished=True)
            lines = [Line(db, SHORT_LINE), Line(db, opts.length)]
            fresh = _timed(lines, opts)
            _autovacuum(db, on=True)
            _analyze(db)
            analyzed = _timed(lines, opts)
        finally:
            db.dispose()
    if outcome.code:
        return outcome.code
    fresh_ratio = _report("before the table is analyzed (a new or busy table):", lines, fresh)
    analyzed_ratio = _report("analyzed, as autovacuum leaves it:", lines, analyzed)
    say(f"goal: line_cost_ratio <= 1.5 (a line of {opts.length} over one of {SHORT_LINE})")
    say(
        f"line_cost_ratio_fresh={fresh_ratio:.3f} line_cost_ratio_analyzed={analyzed_ratio:.3f} "
        f"line_cost_ratio={max(fresh_ratio, analyzed_ratio):.3f}"
    )
    return 0
