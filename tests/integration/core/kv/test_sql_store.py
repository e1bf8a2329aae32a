"""The SQL store's own part: expired rows are purged, live ones kept."""

from __future__ import annotations

import hashlib
import time
import uuid

from sqlalchemy import text

from core.db import Database
from core.kv import CodeCheck
from core.kv.sql_store import SqlStore


def new_key(kind: str = "test") -> str:
    return f"{kind}:{uuid.uuid4().hex}"


def digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


RIGHT = digest("12345678")


def test_sql_purge_deletes_only_what_expired(db: Database) -> None:
    store = SqlStore(db)
    expired, live = new_key("reset"), new_key("reset")
    old_hits, recent_hits = new_key("login:ip"), new_key("login:ip")
    store.put_code(expired, RIGHT, 0.1)
    store.put_code(live, RIGHT, 60)
    with db.transaction() as session:
        session.execute(
            text(
                "INSERT INTO rate_limit_hits (key, at)"
                " VALUES (:key, clock_timestamp() - interval '25 hours')"
            ),
            {"key": old_hits},
        )
    assert store.hit(recent_hits, 5, 60) is None
    time.sleep(0.2)

    assert store.purge_expired() == 2  # the tables start empty for each test

    with db.transaction() as session:
        keys = set(session.scalars(text("SELECT key FROM kv_entries")))
        hit_keys = set(session.scalars(text("SELECT key FROM rate_limit_hits")))
    assert expired not in keys
    assert live in keys
    assert old_hits not in hit_keys
    assert recent_hits in hit_keys
    assert store.check_code(live, RIGHT, 5) is CodeCheck.ACCEPTED
