"""Engine and session factories, and how a write outlives a database restart.

Each process builds its own engines (never at import, never shared across a fork) and
names itself in `application_name`, so `pg_stat_activity` shows who holds what.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg2
from sqlalchemy import Connection, Engine, create_engine, event, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import InterfaceError as SAInterfaceError
from sqlalchemy.exc import OperationalError as SAOperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from core import prepared
from core.settings import Settings

log = logging.getLogger("conveyor.db")

T = TypeVar("T")


class Database:
    def __init__(self, settings: Settings, process_name: str, *, pooled: bool = True) -> None:
        """`pooled=False`: every connection is closed when it is returned."""
        # Connections are kept, never opened for one request and closed after it: a
        # connection opened costs PostgreSQL a new backend, more than the query it runs.
        pool: dict[str, Any] = (
            {"pool_size": settings.db_pool_size, "max_overflow": 0}
            if pooled
            else {"poolclass": NullPool}
        )
        options: dict[str, Any] = {
            **pool,
            "execution_options": {prepared.OPTION: settings.database_prepared_statements},
            # No pre-ping: it costs a round trip on every checkout. A connection the
            # server dropped fails its statement once and the pool discards every
            # connection opened before; the API answers that request with a 503, the
            # job protocol retries the write (`retrying`).
            "pool_recycle": 1800,
            # Bound values (password hashes, job input) never reach error messages or logs.
            "hide_parameters": True,
            "connect_args": {
                "application_name": f"conveyor-{process_name}",
                "connect_timeout": 10,
                # A server gone silent (a cut link, a dead host) fails a connection in
                # seconds, not after the kernel's retransmissions (many minutes), so a
                # job's writes give up within its lease: unacknowledged data for 10 s,
                # or an idle wait whose keepalive probes go unanswered.
                "tcp_user_timeout": 10_000,
                "keepalives": 1,
                "keepalives_idle": 10,
                "keepalives_interval": 2,
                "keepalives_count": 3,
            },
        }
        self.engine: Engine = create_engine(settings.sqlalchemy_url(), **options)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # A pool of its own, opened lazily: switching a pooled connection to autocommit
        # and back costs a round trip when it is returned, and that round trip can fail
        # after the statement has committed, which would make a committed write look
        # like a failed one.
        self._autocommit_engine: Engine = create_engine(
            settings.sqlalchemy_url(), isolation_level="AUTOCOMMIT", **options
        )
        self._reads = sessionmaker(self._autocommit_engine, expire_on_commit=False)
        # A connection closed when returned (`pooled=False`) runs no statement twice:
        # the setting would only cost it round trips.
        if settings.database_prepared_statements and pooled:
            for engine in (self.engine, self._autocommit_engine):
                event.listen(engine, "connect", _generic_plans_only)

    def reads(self) -> Session:
        """A session whose every statement commits on its own (on the autocommit pool):
        for a request that only reads, and writes with at most one statement (a login's
        stamp, a submit's job and its first event). It spares the BEGIN and COMMIT round
        trips; its statements do not share a snapshot."""
        return self._reads()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session that commits when the block ends and rolls back if it raises."""
        with self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def autocommit(self) -> Iterator[Connection]:
        """A connection on which each statement commits on its own, for the hot paths
        that write with one statement (atomic by itself). It saves the BEGIN and COMMIT
        round trips of a transaction, and the ORM session's work per statement."""
        with self._autocommit_engine.connect() as connection:
            yield connection

    def dispose(self) -> None:
        self.engine.dispose()
        self._autocommit_engine.dispose()


def _generic_plans_only(dbapi_connection: Any, _record: Any) -> None:
    """A prepared statement (`core.prepared`) is planned once per connection (and again
    when its table's statistics change). Left to choose, PostgreSQL plans it again at
    each run once the table has statistics and a plan for the given values looks
    cheaper than the one kept: planning these statements costs as much as running
    them."""
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET plan_cache_mode = force_generic_plan")
    dbapi_connection.commit()


def limit_waits(session: Session, *, lock_timeout_ms: int, statement_timeout_ms: int) -> None:
    """For the rest of this transaction, give up waiting on a row lock after
    `lock_timeout_ms` and on any statement after `statement_timeout_ms`: for work that
    must not hang the thread it runs on (a worker's main process, a metrics scrape)."""
    session.execute(
        select(
            func.set_config("lock_timeout", str(lock_timeout_ms), True),
            func.set_config("statement_timeout", str(statement_timeout_ms), True),
        )
    )


def is_unavailable(exc: BaseException) -> bool:
    """The database could not be reached, dropped the connection, or is starting or
    shutting down: worth trying again. Whether SQLAlchemy wrapped the driver's error or
    it escaped unwrapped (from a connection being returned to the pool), the answer is
    the same."""
    if isinstance(exc, DBAPIError):
        # SQLAlchemy wraps the driver's OperationalError and InterfaceError in its own.
        return exc.connection_invalidated or isinstance(exc, SAOperationalError | SAInterfaceError)
    return isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError)


def retrying(what: str, work: Callable[[], T], *, deadline: float) -> T:
    """Run `work` until it gets through, as long as the database is only unavailable and
    `time.monotonic()` is before `deadline`; then the last error is raised.

    For the job protocol's writes: each is a compare-and-set fenced by the attempt, so
    running it again after an error that may or may not have committed is safe.
    """
    delay = 0.1
    while True:
        try:
            return work()
        except Exception as exc:
            if not is_unavailable(exc) or time.monotonic() + delay >= deadline:
                raise
            log.warning("%s: database unavailable (%s); retrying", what, type(exc).__name__)
        time.sleep(delay)
        delay = min(delay * 2, 2.0) * random.uniform(0.8, 1.0)  # noqa: S311 - jitter
