"""Short-lived shared state: password-reset codes, sliding-window rate limits, and
marks that something happened (a client that logged in to an account).

Redis in production; the embedded default has no Redis, so the same interface runs on
PostgreSQL there (`kv_entries` and `rate_limit_hits`). Both keep every operation atomic
across processes and machines, and both take time from the server, never from the
caller, so API machines with skewed clocks still agree.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from core.db import Database
    from core.settings import Settings

# The SQL key column's width; enforced by both stores so a key that works against Redis
# in development cannot fail only on the embedded default (or the other way round).
MAX_KEY_LENGTH = 255
# The SQL store purges rate-limit hits older than this, so no window may be longer.
MAX_WINDOW_SECONDS = 86400.0


class CodeCheck(StrEnum):
    ACCEPTED = "accepted"  # matched; the code is consumed (deleted) in the same atomic step
    WRONG = "wrong"  # did not match; one wrong try counted
    DEAD = "dead"  # no code: never stored, expired, consumed, or out of tries


class KeyValueStore(Protocol):
    def put_code(self, key: str, code_hash: str, ttl_seconds: float) -> None:
        """Store a code (already hashed by the caller) under key, replacing any earlier one
        and its wrong-try count."""

    def discard_code(self, key: str) -> None:
        """Delete the code under key, if any (a password changed some other way)."""

    def check_code(self, key: str, code_hash: str, max_tries: int) -> CodeCheck:
        """Atomic. A match deletes the code: of N concurrent checks with the right hash
        exactly one gets ACCEPTED. A mismatch counts a wrong try; the max_tries-th wrong
        try deletes the code, so afterwards even the right code is DEAD."""

    def hit(self, key: str, limit: int, window_seconds: float, cost: int = 1) -> float | None:
        """Sliding-window log rate limit. If `cost` more hits fit under `limit` in the
        last window_seconds, record them and return None; otherwise record nothing and
        return the seconds until enough hits leave the window for these to pass (with
        `limit` hits recorded and a cost of 1, when the oldest leaves it); always > 0.
        Atomic under concurrency: N concurrent hits with limit L admit exactly L. A cost
        above the limit never passes: callers refuse it first."""

    def remember(self, key: str, ttl_seconds: float) -> None:
        """Mark key for ttl_seconds (again: the mark's life starts over)."""

    def remembers(self, key: str) -> bool:
        """Whether key is marked and the mark has not expired."""

    def purge_expired(self) -> int:
        """Delete what has expired; return the number of rows deleted (Redis: 0, it expires
        keys itself)."""

    def ping(self) -> None:
        """Raise if the backing service is unreachable."""

    def close(self) -> None:
        """Release connections the store opened itself."""


def open_kv_store(settings: Settings, db: Database) -> KeyValueStore:
    """Redis when settings.kv_redis_url() is set, else the SQL store on db."""
    # Imported here: both modules import this one for CodeCheck and the limits.
    url = settings.kv_redis_url()
    if url is not None:
        from core.kv.redis_store import RedisStore

        return RedisStore(url)
    from core.kv.sql_store import SqlStore

    return SqlStore(db)


def check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH:
        # The key itself stays out of the message: it may hold an address or email.
        raise ValueError(f"key must be 1 to {MAX_KEY_LENGTH} characters, got {len(key)}")


def check_ttl(ttl_seconds: float) -> None:
    if not ttl_seconds > 0:
        raise ValueError(f"ttl_seconds must be > 0, got {ttl_seconds}")


def check_max_tries(max_tries: int) -> None:
    if max_tries < 1:
        raise ValueError(f"max_tries must be >= 1, got {max_tries}")


def check_limit(limit: int, window_seconds: float, cost: int = 1) -> None:
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    if not 1 <= cost <= limit:
        raise ValueError(f"cost must be between 1 and the limit, got {cost}")
    if not 0 < window_seconds <= MAX_WINDOW_SECONDS:
        raise ValueError(
            f"window_seconds must be in (0, {MAX_WINDOW_SECONDS:g}], got {window_seconds}"
        )
