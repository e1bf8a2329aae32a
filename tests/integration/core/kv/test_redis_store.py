"""The Redis store's own part: namespaced keys that expire, and a server that is down
found out quickly."""

from __future__ import annotations

import hashlib
import time
import uuid

import pytest
import redis

from core.kv.redis_store import CODE_PREFIX, HITS_PREFIX, RedisStore
from tests.support import services
from tests.support.stack import Stack


@pytest.fixture(scope="module")
def redis_url(stack: Stack) -> str:
    if stack.redis_url is None:
        services.unavailable("REDIS_URL is not set: the Redis store is not tested")
    assert stack.redis_url is not None
    return stack.redis_url


def new_key(kind: str = "test") -> str:
    return f"{kind}:{uuid.uuid4().hex}"


def digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


RIGHT = digest("12345678")


def test_redis_keys_are_namespaced_and_expire(redis_url: str) -> None:
    store = RedisStore(redis_url)
    raw = redis.Redis.from_url(redis_url)
    try:
        code_key, hits_key = new_key("reset"), new_key("login:ip")
        store.put_code(code_key, RIGHT, 60)
        assert store.hit(hits_key, 5, 30) is None
        code_ttl: int = raw.pttl(CODE_PREFIX + code_key)  # type: ignore[assignment]
        hits_ttl: int = raw.pttl(HITS_PREFIX + hits_key)  # type: ignore[assignment]
        assert 0 < code_ttl <= 60_000
        assert 0 < hits_ttl <= 30_000
        assert not raw.exists(code_key, hits_key)
        assert CODE_PREFIX.startswith("conveyor:kv:")
        assert HITS_PREFIX.startswith("conveyor:kv:")
        assert store.purge_expired() == 0
    finally:
        raw.close()
        store.close()


def test_unreachable_redis_fails_quickly() -> None:
    # Nothing listens on port 1; the store must raise, and soon, not retry for long.
    store = RedisStore("redis://127.0.0.1:1/0", timeout_seconds=0.5)
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        store.ping()
    with pytest.raises(redis.ConnectionError):
        store.hit(new_key(), 1, 60)
    assert time.monotonic() - started < 3
    store.close()
