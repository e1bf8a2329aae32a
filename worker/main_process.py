"""The worker's main process's own database access, for what it does besides handing
messages to the pool: taking a dead pool process's job back (`worker.requests`), and
cancelling what the monitor revokes (`worker.monitor`)."""

from __future__ import annotations

from core.db import Database
from core.settings import get_settings

_db: Database | None = None

# Its consumer loop waits while it writes: never for long.
MAIN_PROCESS_WAITS = {"lock_timeout_ms": 2000, "statement_timeout_ms": 5000}


def database() -> Database:
    """Connections opened when needed and closed after use: the main process forks new
    pool processes, which must not inherit (and, closing them, end) its connections.
    One try per call, no retries: this process also serves every other job of the
    worker; what it fails to write, leases and the reconciler make good."""
    global _db
    if _db is None:
        _db = Database(get_settings(), "worker-main", pooled=False)
    return _db
