"""Per-process resources of a worker: settings, database, object storage.

Built lazily and per process id, so a prefork child never reuses a connection pool
that was opened in its parent before the fork.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from celery import Celery

from core.db import Database
from core.jobs.publishing import JobPublisher
from core.settings import Settings, get_settings
from core.storage import Storage, open_storage


@dataclass
class Runtime:
    settings: Settings
    db: Database
    pid: int
    _storage: Storage | None = None
    _publisher: JobPublisher | None = None

    @property
    def storage(self) -> Storage:
        """Object storage, opened on first use: most jobs never touch it."""
        if self._storage is None:
            self._storage = open_storage(self.settings)
        return self._storage

    def publisher(self, celery: Celery) -> JobPublisher:
        """This process's publisher (of hand-offs), made on first use, on the worker's
        Celery app (every caller passes the same one)."""
        current = self._publisher
        if current is not None:
            return current
        with _lock:  # the threads pool runs several jobs at once
            if self._publisher is None:
                self._publisher = JobPublisher(celery, self.db, self.settings)
            return self._publisher

    def close(self) -> None:
        """What the publisher holds is written, and the database's connections closed."""
        if self._publisher is not None:
            self._publisher.close()
        self.db.dispose()


_runtime: Runtime | None = None
# The threads pool starts several jobs at once: one of them builds the runtime.
_lock = threading.Lock()


def close_runtime() -> None:
    """Write what this process's runtime holds and close it, if it made one."""
    current = _runtime
    if current is not None and current.pid == os.getpid():
        current.close()


def runtime() -> Runtime:
    global _runtime
    current = _runtime
    if current is not None and current.pid == os.getpid():
        return current
    with _lock:
        if _runtime is None or _runtime.pid != os.getpid():
            settings = get_settings()
            db = Database(settings, "worker")
            _runtime = Runtime(settings=settings, db=db, pid=os.getpid())
        return _runtime
