"""Per-process resources of a worker: settings, database, object storage.

Built lazily and per process id, so a prefork child never reuses a connection pool
that was opened in its parent before the fork.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from core.db import Database
from core.jobs.publishing import EnqueuedRecorder
from core.settings import Settings, get_settings
from core.storage import Storage, open_storage


@dataclass
class Runtime:
    settings: Settings
    db: Database
    pid: int
    # The messages this process published (hand-offs), recorded in batches.
    enqueued: EnqueuedRecorder
    _storage: Storage | None = None

    @property
    def storage(self) -> Storage:
        """Object storage, opened on first use: most jobs never touch it."""
        if self._storage is None:
            self._storage = open_storage(self.settings)
        return self._storage


_runtime: Runtime | None = None
# The threads pool starts several jobs at once: one of them builds the runtime.
_lock = threading.Lock()


def runtime() -> Runtime:
    global _runtime
    current = _runtime
    if current is not None and current.pid == os.getpid():
        return current
    with _lock:
        if _runtime is None or _runtime.pid != os.getpid():
            settings = get_settings()
            db = Database(settings, "worker")
            _runtime = Runtime(
                settings=settings, db=db, pid=os.getpid(), enqueued=EnqueuedRecorder(db)
            )
        return _runtime
