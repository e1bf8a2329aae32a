"""Which key-value store the settings choose; no server is contacted."""

from __future__ import annotations

from typing import Any

import pytest

from core.db import Database
from core.kv import open_kv_store
from core.kv.redis_store import RedisStore
from core.kv.sql_store import SqlStore
from core.settings import Settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "DB_HOST", "REDIS_URL", "REDIS_HOST", "BROKER_URL"):
        monkeypatch.delenv(name, raising=False)


def make(**values: Any) -> Settings:
    return Settings(
        _env_file=None,
        environment="test",
        database_url="postgresql://nobody@127.0.0.1:1/none",
        **values,
    )


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, SqlStore),
        ({"redis_url": "redis://127.0.0.1:1/0"}, RedisStore),
        ({"redis_host": "127.0.0.1", "redis_port": 1}, RedisStore),
    ],
)
def test_redis_when_configured_else_sql(values: dict[str, Any], expected: type) -> None:
    settings = make(**values)
    db = Database(settings, "tests")
    store = open_kv_store(settings, db)
    try:
        assert isinstance(store, expected)
    finally:
        store.close()
        db.dispose()
