"""The key-value store on PostgreSQL (the embedded default, which has no Redis).

Each call is its own short transaction on a connection of its own, never the caller's
session: a wrong try or a rate-limit hit must stay counted when the request that made it
fails and rolls back. Times come from the database's clock, so API processes with skewed
clocks agree; `clock_timestamp()` rather than `now()` because a transaction may have
waited for a lock since it began.
"""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta

from sqlalchemy import text

from core.db import Database
from core.kv import (
    MAX_WINDOW_SECONDS,
    CodeCheck,
    check_key,
    check_limit,
    check_max_tries,
    check_ttl,
)

_PUT_CODE = text(
    """
    INSERT INTO kv_entries (key, value, expires_at)
    VALUES (:key, jsonb_build_object('hash', CAST(:hash AS text), 'tries', 0),
            clock_timestamp() + :ttl)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
    """
)

# The row lock serialises concurrent checks of one code; a check that waited re-reads the
# row, so it sees the try the other counted, or no row if the other consumed it.
_LOCK_CODE = text(
    """
    SELECT value->>'hash', (value->>'tries')::int FROM kv_entries
    WHERE key = :key AND expires_at > clock_timestamp()
    FOR UPDATE
    """
)
_DELETE = text("DELETE FROM kv_entries WHERE key = :key")
_SET_TRIES = text(
    "UPDATE kv_entries SET value = jsonb_set(value, '{tries}', to_jsonb(CAST(:tries AS int)))"
    " WHERE key = :key"
)

# Hits of one key queue here, so the count and the insert that follows it are one step.
# The reconciler's advisory lock is one fixed number; a key hashing to it would only make
# the two wait for each other briefly.
_LOCK_HITS = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")
_HITS_IN_WINDOW = text(
    """
    WITH clock AS (SELECT clock_timestamp() AS now)
    SELECT clock.now, hits.at
    FROM clock LEFT JOIN rate_limit_hits AS hits
      ON hits.key = :key AND hits.at > clock.now - :window
    ORDER BY hits.at
    """
)
_RECORD_HIT = text("INSERT INTO rate_limit_hits (key, at) VALUES (:key, :at)")

# Marks share the entries table with codes; their value says which they are.
_REMEMBER = text(
    """
    INSERT INTO kv_entries (key, value, expires_at)
    VALUES (:key, '{"mark": true}'::jsonb, clock_timestamp() + :ttl)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
    """
)
_REMEMBERS = text(
    """
    SELECT 1 FROM kv_entries
    WHERE key = :key AND value ? 'mark' AND expires_at > clock_timestamp()
    """
)

_PURGE_ENTRIES = text("DELETE FROM kv_entries WHERE expires_at <= clock_timestamp()")
_PURGE_HITS = text("DELETE FROM rate_limit_hits WHERE at <= clock_timestamp() - :max_window")


class SqlStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def put_code(self, key: str, code_hash: str, ttl_seconds: float) -> None:
        check_key(key)
        check_ttl(ttl_seconds)
        with self._db.transaction() as session:
            session.execute(
                _PUT_CODE, {"key": key, "hash": code_hash, "ttl": timedelta(seconds=ttl_seconds)}
            )

    def discard_code(self, key: str) -> None:
        check_key(key)
        with self._db.transaction() as session:
            session.execute(_DELETE, {"key": key})

    def check_code(self, key: str, code_hash: str, max_tries: int) -> CodeCheck:
        check_key(key)
        check_max_tries(max_tries)
        with self._db.transaction() as session:
            row = session.execute(_LOCK_CODE, {"key": key}).one_or_none()
            if row is None:
                return CodeCheck.DEAD
            stored_hash, tries = str(row[0]), int(row[1] or 0)
            # A code already at max_tries (the setting was lowered after it was stored)
            # is dead, like one that reached it here.
            if tries >= max_tries:
                session.execute(_DELETE, {"key": key})
                return CodeCheck.DEAD
            if hmac.compare_digest(stored_hash.encode(), code_hash.encode()):
                session.execute(_DELETE, {"key": key})
                return CodeCheck.ACCEPTED
            tries += 1
            if tries >= max_tries:
                session.execute(_DELETE, {"key": key})
            else:
                session.execute(_SET_TRIES, {"key": key, "tries": tries})
            return CodeCheck.WRONG

    def hit(self, key: str, limit: int, window_seconds: float, cost: int = 1) -> float | None:
        check_key(key)
        check_limit(limit, window_seconds, cost)
        window = timedelta(seconds=window_seconds)
        with self._db.transaction() as session:
            session.execute(_LOCK_HITS, {"key": key})
            rows = session.execute(_HITS_IN_WINDOW, {"key": key, "window": window}).all()
            now: datetime = rows[0][0]
            hits: list[datetime] = [row[1] for row in rows if row[1] is not None]
            if len(hits) + cost <= limit:
                session.execute(_RECORD_HIT, [{"key": key, "at": now}] * cost)
                return None
            # The hit whose leaving makes room for `cost` more: the oldest one when
            # exactly `limit` are recorded and one is asked for.
            blocking = hits[len(hits) + cost - limit - 1]
            wait = (blocking + window - now).total_seconds()
            return max(wait, 1e-6)

    def remember(self, key: str, ttl_seconds: float) -> None:
        check_key(key)
        check_ttl(ttl_seconds)
        with self._db.transaction() as session:
            session.execute(_REMEMBER, {"key": key, "ttl": timedelta(seconds=ttl_seconds)})

    def remembers(self, key: str) -> bool:
        check_key(key)
        with self._db.transaction() as session:
            return session.execute(_REMEMBERS, {"key": key}).first() is not None

    def purge_expired(self) -> int:
        with self._db.transaction() as session:
            connection = session.connection()
            entries = connection.execute(_PURGE_ENTRIES).rowcount
            hits = connection.execute(
                _PURGE_HITS, {"max_window": timedelta(seconds=MAX_WINDOW_SECONDS)}
            ).rowcount
        return entries + hits

    def ping(self) -> None:
        with self._db.transaction() as session:
            session.execute(text("SELECT 1"))

    def close(self) -> None:
        # The Database belongs to whoever passed it in and outlives the store.
        pass
