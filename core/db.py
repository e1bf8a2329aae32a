"""Engine and session factories.

Each process builds its own engine (never at import, never shared across a fork) and
names itself in `application_name`, so `pg_stat_activity` shows who holds what.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings


class Database:
    def __init__(self, settings: Settings, process_name: str) -> None:
        self.engine: Engine = create_engine(
            settings.sqlalchemy_url(),
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_pool_size,
            # No pre-ping: it costs a round trip on every checkout. A connection the
            # server dropped fails its statement once and the pool discards it; the API
            # answers that request with a 503, a worker retries the task.
            pool_recycle=1800,
            # Bound values (password hashes, job input) never reach error messages or logs.
            hide_parameters=True,
            connect_args={
                "application_name": f"conveyor-{process_name}",
                "connect_timeout": 10,
            },
        )
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Same pool; a connection is switched to autocommit (a client-side flag in
        # psycopg2, no round trip) while it is checked out here.
        self._autocommit_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")

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
