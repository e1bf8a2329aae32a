"""The key-value store on Redis (production).

Every operation is one Lua script, so it runs atomically on the server with no
round trips between its read and its write, and takes the time from the server's clock.
"""

from __future__ import annotations

import math
import uuid

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.kv import CodeCheck, check_key, check_limit, check_max_tries, check_ttl

# Distinct from Celery's keys in the same database, and codes apart from rate limits so
# one caller key used for both cannot meet a WRONGTYPE error (as the SQL tables cannot).
CODE_PREFIX = "conveyor:kv:code:"
HITS_PREFIX = "conveyor:kv:hits:"
MARK_PREFIX = "conveyor:kv:mark:"

_PUT_CODE = """
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'hash', ARGV[1], 'tries', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# Returns 0 dead, 1 accepted, 2 wrong. A code already at max_tries (the setting was
# lowered after it was stored) is dead, like one that reached it here.
_CHECK_CODE = """
local entry = redis.call('HMGET', KEYS[1], 'hash', 'tries')
local stored = entry[1]
if not stored then
  return 0
end
local max_tries = tonumber(ARGV[2])
local tries = tonumber(entry[2]) or 0
if tries >= max_tries then
  redis.call('DEL', KEYS[1])
  return 0
end
if stored == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
tries = redis.call('HINCRBY', KEYS[1], 'tries', 1)
if tries >= max_tries then
  redis.call('DEL', KEYS[1])
end
return 2
"""

# Scores are microseconds of the server's clock (exact in a double until 2255). Returns
# -1 when the hit is admitted, else the microseconds until it would be.
_HIT = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count + cost <= limit then
  for i = 1, cost do
    redis.call('ZADD', KEYS[1], now, ARGV[3] .. ':' .. i)
  end
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
  return -1
end
-- The hit whose leaving makes room for `cost` more.
local at = count + cost - limit - 1
local blocking = redis.call('ZRANGE', KEYS[1], at, at, 'WITHSCORES')
return math.max(1, tonumber(blocking[2]) + window - now)
"""


class RedisStore:
    def __init__(self, url: str, *, timeout_seconds: float = 2.0) -> None:
        self._client = redis.Redis.from_url(
            url,
            # These calls sit on the login and reset paths: a stuck Redis must fail the
            # request quickly, not hold it.
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            health_check_interval=30,
            # One immediate retry, on connection errors only, covers a pooled connection
            # the server closed. Not on timeouts: the script may have run, and running it
            # again would count a second try or hit (or consume an accepted code).
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        )
        self._put_code = self._client.register_script(_PUT_CODE)
        self._check_code = self._client.register_script(_CHECK_CODE)
        self._hit = self._client.register_script(_HIT)

    def put_code(self, key: str, code_hash: str, ttl_seconds: float) -> None:
        check_key(key)
        check_ttl(ttl_seconds)
        ttl_ms = max(1, math.ceil(ttl_seconds * 1000))
        self._put_code(keys=[CODE_PREFIX + key], args=[code_hash, ttl_ms])

    def discard_code(self, key: str) -> None:
        check_key(key)
        self._client.delete(CODE_PREFIX + key)

    def check_code(self, key: str, code_hash: str, max_tries: int) -> CodeCheck:
        check_key(key)
        check_max_tries(max_tries)
        result = int(self._check_code(keys=[CODE_PREFIX + key], args=[code_hash, max_tries]))
        if result == 1:
            return CodeCheck.ACCEPTED
        if result == 2:
            return CodeCheck.WRONG
        return CodeCheck.DEAD

    def hit(self, key: str, limit: int, window_seconds: float, cost: int = 1) -> float | None:
        check_key(key)
        check_limit(limit, window_seconds, cost)
        window_us = max(1, round(window_seconds * 1_000_000))
        # The member only has to be unique: two hits in the same microsecond both count.
        member = uuid.uuid4().hex
        args: list[int | str] = [limit, window_us, member, cost]
        wait_us = int(self._hit(keys=[HITS_PREFIX + key], args=args))
        if wait_us < 0:
            return None
        return max(wait_us, 1) / 1_000_000

    def remember(self, key: str, ttl_seconds: float) -> None:
        check_key(key)
        check_ttl(ttl_seconds)
        self._client.set(MARK_PREFIX + key, 1, px=max(1, math.ceil(ttl_seconds * 1000)))

    def remembers(self, key: str) -> bool:
        check_key(key)
        return bool(self._client.exists(MARK_PREFIX + key))

    def purge_expired(self) -> int:
        return 0

    def ping(self) -> None:
        self._client.ping()

    def close(self) -> None:
        self._client.close()
