"""Per-process resources of a worker: settings, database, object storage.

Built lazily and per process id, so a prefork child never reuses a connection pool
that was opened in its parent before the fork.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from core.db import Database
from core.settings import Settings, get_settings
from core.storage import Storage, open_storage


@dataclass
class Runtime:
    settings: Settings
    db: Database
    pid: int
    _storage: Storage | None = None

    @property
    def storage(self) -> Storage:
        """Object storage, opened on first use: most jobs never touch it."""
        if self._storage is None:
            self._storage = open_storage(self.settings)
        return self._storage


_runtime: Runtime | None = None


def runtime() -> Runtime:
    global _runtime
    if _runtime is None or _runtime.pid != os.getpid():
        settings = get_settings()
        _runtime = Runtime(settings=settings, db=Database(settings, "worker"), pid=os.getpid())
    return _runtime
