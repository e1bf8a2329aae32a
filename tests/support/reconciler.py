"""Keeping the reconciler (run by a worker's beat) away from a test's jobs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text

from core.db import Database
from worker.maintenance.reconciler import LOCK_KEY


@contextmanager
def reconciler_held_off(db: Database) -> Iterator[None]:
    """Hold the reconciler's lock while the block runs: any reconciler skips its rounds
    ("another reconciler is running"), so what the block sees written was not its doing,
    however long the block takes."""
    with db.engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": LOCK_KEY})
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
            connection.commit()
