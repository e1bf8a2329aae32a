"""Both key-value stores against real servers: the same behaviour, atomic under threads.

Every test uses its own keys, so tests share the servers (and other sessions' keys in the
same Redis database) without interfering."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest
import redis
from pydantic import SecretStr
from sqlalchemy.exc import OperationalError

from core.db import Database
from core.kv import MAX_KEY_LENGTH, CodeCheck, KeyValueStore
from core.kv.redis_store import RedisStore
from core.kv.sql_store import SqlStore
from tests.support import services
from tests.support.smtp import free_port
from tests.support.stack import Stack

T = TypeVar("T")


@pytest.fixture(scope="module")
def db(stack: Stack) -> Iterator[Database]:
    database = Database(stack.settings, "tests")
    yield database
    database.dispose()


@pytest.fixture(scope="module")
def redis_url(stack: Stack) -> str:
    if stack.redis_url is None:
        services.unavailable("REDIS_URL is not set: the Redis store is not tested")
    assert stack.redis_url is not None
    return stack.redis_url


@pytest.fixture(
    scope="module",
    params=["sql", pytest.param("redis", marks=pytest.mark.redis)],
)
def store(request: pytest.FixtureRequest, db: Database) -> Iterator[KeyValueStore]:
    kv: KeyValueStore
    if request.param == "sql":
        kv = SqlStore(db)
    else:
        kv = RedisStore(request.getfixturevalue("redis_url"))
    yield kv
    kv.close()


def new_key(kind: str = "test") -> str:
    return f"{kind}:{uuid.uuid4().hex}"


def digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


# Lives of codes and windows of limits, shortest first: a test whose steps this machine
# cannot make in time tries the next (see test_a_code_expires).
LIVES = (0.4, 1.6, 6.4, 25.6)
WINDOWS = (0.8, 3.2, 12.8, 51.2)

RIGHT = digest("12345678")


WRONG = digest("87654321")


def all_at_once(count: int, call: Callable[[], T]) -> list[T]:
    """Run `call` on `count` threads released together, so the calls really overlap."""
    barrier = threading.Barrier(count)

    def run() -> T:
        barrier.wait(timeout=10)
        return call()

    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(run) for _ in range(count)]
        return [future.result(timeout=30) for future in futures]


def test_right_code_is_accepted_once(store: KeyValueStore) -> None:
    key = new_key("reset")
    store.put_code(key, RIGHT, 60)
    assert store.check_code(key, RIGHT, 5) is CodeCheck.ACCEPTED
    assert store.check_code(key, RIGHT, 5) is CodeCheck.DEAD


def test_a_code_never_stored_is_dead(store: KeyValueStore) -> None:
    assert store.check_code(new_key("reset"), RIGHT, 5) is CodeCheck.DEAD


def test_wrong_tries_below_the_limit_leave_the_code(store: KeyValueStore) -> None:
    key = new_key("reset")
    store.put_code(key, RIGHT, 60)
    assert store.check_code(key, WRONG, 3) is CodeCheck.WRONG
    assert store.check_code(key, WRONG, 3) is CodeCheck.WRONG
    assert store.check_code(key, RIGHT, 3) is CodeCheck.ACCEPTED


def test_the_last_wrong_try_kills_the_code(store: KeyValueStore) -> None:
    key = new_key("reset")
    store.put_code(key, RIGHT, 60)
    assert [store.check_code(key, WRONG, 3) for _ in range(3)] == [CodeCheck.WRONG] * 3
    assert store.check_code(key, RIGHT, 3) is CodeCheck.DEAD
    assert store.check_code(key, WRONG, 3) is CodeCheck.DEAD


def test_a_lowered_limit_applies_to_tries_already_counted(store: KeyValueStore) -> None:
    key = new_key("reset")
    store.put_code(key, RIGHT, 60)
    assert store.check_code(key, WRONG, 5) is CodeCheck.WRONG
    assert store.check_code(key, WRONG, 5) is CodeCheck.WRONG
    assert store.check_code(key, RIGHT, 2) is CodeCheck.DEAD


def test_a_new_code_replaces_the_old_one_and_its_tries(store: KeyValueStore) -> None:
    key = new_key("reset")
    store.put_code(key, RIGHT, 60)
    assert store.check_code(key, WRONG, 3) is CodeCheck.WRONG
    assert store.check_code(key, WRONG, 3) is CodeCheck.WRONG
    new = digest("11112222")
    store.put_code(key, new, 60)
    assert store.check_code(key, RIGHT, 3) is CodeCheck.WRONG  # the old code is gone
    assert store.check_code(key, WRONG, 3) is CodeCheck.WRONG  # two tries left, not zero
    assert store.check_code(key, new, 3) is CodeCheck.ACCEPTED


def test_a_code_expires(store: KeyValueStore) -> None:
    # The code must still be there when first checked: if this machine took longer than
    # the code's life to get there, nothing was learnt, and a longer life is tried.
    for ttl in LIVES:
        key = new_key("reset")
        store.put_code(key, RIGHT, ttl)
        stored = time.monotonic()  # the code was given its expiry before this
        alive = store.check_code(key, WRONG, 5)
        if time.monotonic() - stored < ttl:
            break
    else:
        pytest.fail(f"no check came within {ttl} s of storing the code")
    assert alive is CodeCheck.WRONG
    time.sleep(stored + ttl + 0.1 - time.monotonic())
    assert store.check_code(key, RIGHT, 5) is CodeCheck.DEAD
    # An expired code left behind (SQL purges later) does not block a new one.
    store.put_code(key, RIGHT, 60)
    assert store.check_code(key, RIGHT, 5) is CodeCheck.ACCEPTED


def test_concurrent_right_checks_accept_exactly_once(store: KeyValueStore) -> None:
    key = new_key("reset")
    store.put_code(key, RIGHT, 60)
    results = Counter(all_at_once(10, lambda: store.check_code(key, RIGHT, 5)))
    assert results == {CodeCheck.ACCEPTED: 1, CodeCheck.DEAD: 9}


def test_concurrent_wrong_checks_each_count(store: KeyValueStore) -> None:
    key = new_key("reset")
    store.put_code(key, RIGHT, 60)
    results = Counter(all_at_once(10, lambda: store.check_code(key, WRONG, 4)))
    assert results == {CodeCheck.WRONG: 4, CodeCheck.DEAD: 6}
    assert store.check_code(key, RIGHT, 4) is CodeCheck.DEAD


def test_keys_up_to_the_column_width(store: KeyValueStore) -> None:
    longest = "reset:" + "k" * (MAX_KEY_LENGTH - 6 - 32) + uuid.uuid4().hex
    assert len(longest) == MAX_KEY_LENGTH
    store.put_code(longest, RIGHT, 60)
    assert store.check_code(longest, RIGHT, 5) is CodeCheck.ACCEPTED
    assert store.hit(longest, 1, 60) is None
    with pytest.raises(ValueError, match="key"):
        store.put_code(longest + "k", RIGHT, 60)
    with pytest.raises(ValueError, match="key"):
        store.hit(longest + "k", 1, 60)


def test_concurrent_hits_admit_exactly_the_limit(store: KeyValueStore) -> None:
    key = new_key("login:ip")
    # A window no run of these hits outlasts, however slow the machine.
    window = 600.0
    results = all_at_once(20, lambda: store.hit(key, 5, window))
    admitted = [r for r in results if r is None]
    refused = [r for r in results if r is not None]
    assert len(admitted) == 5
    assert len(refused) == 15
    assert all(0 < wait <= window for wait in refused), refused
    # The refused hits recorded nothing, or the wait would grow past the window's end.
    wait = store.hit(key, 5, window)
    assert wait is not None
    assert 0 < wait <= window


def test_the_window_slides(store: KeyValueStore) -> None:
    # Two hits 3/8 of a window apart, with room for two. The steps below are conclusive
    # only if this machine made each in time; if not, the same is tried in a longer window.
    for window in WINDOWS:
        key = new_key("login:account")
        first = time.monotonic()  # before the first hit
        assert store.hit(key, 2, window) is None
        time.sleep(window * 3 / 8)
        second = time.monotonic()  # before the second hit
        assert store.hit(key, 2, window) is None
        full = store.hit(key, 2, window)
        full_in_time = time.monotonic() - first < window  # the first hit still counted
        if full is None and not full_in_time:
            continue
        # Until the first hit leaves, not the second.
        assert full is not None
        assert 0 < full <= window * 5 / 8, full
        time.sleep(full + 0.05)
        freed = store.hit(key, 2, window)
        full_again = store.hit(key, 2, window)
        if time.monotonic() - second >= window:
            continue  # the second hit may have left too
        assert freed is None
        assert full_again is not None
        assert 0 < full_again <= window
        return
    pytest.fail(f"no run of the hits fitted in a window of {window} s")


def test_a_hit_of_several_passes_only_whole(store: KeyValueStore) -> None:
    key = new_key("submit:tenant")
    window = 600.0
    assert store.hit(key, 5, window, cost=3) is None
    # Two left: a hit of three waits (for the oldest to leave), and records nothing.
    wait = store.hit(key, 5, window, cost=3)
    assert wait is not None
    assert 0 < wait <= window
    assert store.hit(key, 5, window, cost=2) is None
    assert store.hit(key, 5, window) is not None
    with pytest.raises(ValueError, match="cost"):
        store.hit(key, 5, window, cost=6)


def test_keys_are_limited_separately(store: KeyValueStore) -> None:
    full, other = new_key("login:ip"), new_key("login:ip")
    assert store.hit(full, 1, 60) is None
    assert store.hit(full, 1, 60) is not None
    assert store.hit(other, 1, 60) is None


def test_a_code_and_a_limit_may_share_a_key(store: KeyValueStore) -> None:
    key = new_key("shared")
    store.put_code(key, RIGHT, 60)
    assert store.hit(key, 1, 60) is None
    assert store.check_code(key, RIGHT, 5) is CodeCheck.ACCEPTED


def test_invalid_arguments_are_refused(store: KeyValueStore) -> None:
    key = new_key()
    with pytest.raises(ValueError, match="limit"):
        store.hit(key, 0, 60)
    with pytest.raises(ValueError, match="window"):
        store.hit(key, 1, 0)
    with pytest.raises(ValueError, match="window"):
        store.hit(key, 1, 2 * 86400)
    with pytest.raises(ValueError, match="ttl"):
        store.put_code(key, RIGHT, 0)
    with pytest.raises(ValueError, match="max_tries"):
        store.check_code(key, RIGHT, 0)


def test_ping_answers_only_while_the_server_does(store: KeyValueStore, stack: Stack) -> None:
    """Readiness (`/readyz`) pings the store: it must tell a store whose server answers
    from one whose server is gone."""
    store.ping()

    gone = store_on_a_server_that_is_down(store, stack)
    try:
        with pytest.raises((redis.ConnectionError, OperationalError)):
            gone.ping()
    finally:
        gone.close()


def store_on_a_server_that_is_down(like: KeyValueStore, stack: Stack) -> KeyValueStore:
    """A store of the same kind, configured for a port nothing listens on."""
    nowhere = f"127.0.0.1:{free_port()}"
    if isinstance(like, RedisStore):
        return RedisStore(f"redis://{nowhere}/0", timeout_seconds=0.5)
    url = SecretStr(f"postgresql://postgres@{nowhere}/nothing")
    return SqlStore(Database(stack.settings.model_copy(update={"database_url": url}), "tests"))


def test_a_mark_is_remembered_until_it_expires(store: KeyValueStore) -> None:
    key = new_key("known")
    assert store.remembers(key) is False
    for ttl in LIVES:
        key = new_key("known")
        store.remember(key, ttl)
        marked = time.monotonic()
        seen = store.remembers(key)
        if time.monotonic() - marked < ttl:
            break
    else:
        pytest.fail(f"no look came within {ttl} s of the mark")
    assert seen is True
    time.sleep(marked + ttl + 0.1 - time.monotonic())
    assert store.remembers(key) is False
    # Marked again, it is there again.
    store.remember(key, 60)
    assert store.remembers(key) is True


def test_a_mark_is_not_a_code(store: KeyValueStore) -> None:
    key = new_key("known")
    store.remember(key, 60)
    other = new_key("reset")
    store.put_code(other, RIGHT, 60)
    assert store.remembers(other) is False
    assert store.check_code(other, RIGHT, 5) is CodeCheck.ACCEPTED
