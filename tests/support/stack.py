"""The services one pytest process tests against, and the settings that point at them.

Under pytest-xdist every worker process is a session of its own: its own PostgreSQL
database, Redis database, S3 server and SMTP server, so parallel sessions never see each
other's rows, broker messages, objects or mail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from pydantic import SecretStr

from core.db import Database
from core.migrate import upgrade
from core.settings import Settings, get_settings
from core.storage import open_storage
from tests.support import services
from tests.support.rabbitmq import rabbitmq_vhost
from tests.support.s3 import FAKE_KEY, FAKE_SECRET, REGION, MotoS3Server, new_bucket_name
from tests.support.smtp import SmtpServer

TEST_SETTINGS = {
    "ENVIRONMENT": "test",
    "SECRET_KEY": "test-secret-key-that-is-long-enough-for-hs256",
    # Short clocks so recovery paths finish within a test's patience.
    "JOB_LEASE_SECONDS": "3",
    "RECONCILE_INTERVAL_SECONDS": "1",
    "UNPUBLISHED_GRACE_SECONDS": "1",
    "RETRY_BACKOFF_BASE_SECONDS": "0.2",
    "RETRY_BACKOFF_MAX_SECONDS": "1",
    "LOG_LEVEL": "INFO",
    # Every test logs in from the same address; throttling has its own tests.
    "LOGIN_LIMIT_PER_IP": "1000000",
    "LOGIN_LIMIT_PER_ACCOUNT": "1000000",
    "LOGIN_LIMIT_PER_ACCOUNT_UNFAMILIAR": "1000000",
    "RESET_LIMIT_PER_IP": "1000000",
    "RESET_LIMIT_PER_ACCOUNT": "1000000",
    "RESET_EMAILS_PER_ACCOUNT": "1000000",
    "REGISTER_LIMIT_PER_IP": "1000000",
    "INVITE_LIMIT_PER_IP": "1000000",
    "TENANT_LIMIT_PER_USER": "1000000",
    "INVITE_LIMIT_PER_RECIPIENT": "1000000",
    # Tests submit hundreds of jobs from one tenant; the submit limits have their own.
    "TENANT_SUBMIT_LIMIT": "1000000",
    "SMTP_TLS": "none",
    # Test receivers listen on loopback; retries come in seconds, not hours.
    "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
    "WEBHOOK_RETRY_DELAYS": "0.2,0.5,1,1,1,1,1",
    "WEBHOOK_CONNECT_TIMEOUT_SECONDS": "2",
    "WEBHOOK_TIMEOUT_SECONDS": "3",
}

REDIS_DATABASES = 16


@dataclass(frozen=True)
class Stack:
    settings: Settings
    env: dict[str, str]
    database_url: str
    redis_url: str | None
    data_dir: Path
    # The real SMTP server account email goes to (from the API's jobs via the worker).
    smtp: SmtpServer
    # The real S3 HTTP endpoint (moto) uploads go to.
    s3: MotoS3Server
    # A pool on the test database, for factories and for reading rows a client cannot see.
    db: Database


def xdist_worker_number() -> int:
    """0 outside pytest-xdist; N for its worker `gwN`."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(name[2:]) if name.startswith("gw") else 0


def worker_redis_url(url: str, worker: int) -> str:
    """REDIS_URL's database moved up by the xdist worker's number, wrapping at 16: each
    parallel session flushes and uses a database no other session touches."""
    parts = urlsplit(url)
    db = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(db + worker) % REDIS_DATABASES}"))


@contextmanager
def running_stack(base: Path) -> Iterator[Stack]:
    """Start (or find) every service, build the schema with the migrations, and export
    the settings to the environment, so in-process code and worker subprocesses agree."""
    with (
        services.postgres_server(base) as server,
        SmtpServer() as smtp,
        MotoS3Server() as s3,
        _broker() as broker_url,
    ):
        database_url = services.create_database(server)
        try:
            stack = _configure(base, database_url, smtp, s3, broker_url)
            try:
                yield stack
            finally:
                stack.db.dispose()
        finally:
            services.drop_database(server, database_url)


@contextmanager
def _broker() -> Iterator[str | None]:
    """The broker, when it is not Redis: CONVEYOR_TEST_BROKER=rabbitmq runs the session
    on a RabbitMQ virtual host of its own (`make test` runs the tests marked `broker`
    that way too). Redis still keeps the accounts' codes and counters."""
    if os.environ.get("CONVEYOR_TEST_BROKER") == "rabbitmq":
        with rabbitmq_vhost() as url:
            yield url
    else:
        yield None


def _configure(
    base: Path, database_url: str, smtp: SmtpServer, s3: MotoS3Server, broker_url: str | None
) -> Stack:
    redis_url = services.redis_url()
    if redis_url:
        redis_url = worker_redis_url(redis_url, xdist_worker_number())
        # The tests own this Redis database: stale messages would be run by our worker.
        redis.Redis.from_url(redis_url).flushdb()
    env_updates = {
        **TEST_SETTINGS,
        "DATABASE_URL": database_url,
        "DATA_DIR": str(base),
        "SMTP_HOST": smtp.host,
        "SMTP_PORT": str(smtp.port),
        "S3_ENDPOINT_URL": s3.endpoint_url,
        "S3_REGION": REGION,
        "S3_ADDRESSING_STYLE": "path",
        "DO_SPACES_BUCKET": new_bucket_name(),
        "DO_SPACES_KEY": FAKE_KEY,
        "DO_SPACES_SECRET": FAKE_SECRET,
        # The smallest part S3 allows, so multipart uploads need little data.
        "S3_PART_SIZE_MIB": "5",
    }
    # Agent runs are configured per test module, against a local stand-in: never OpenAI.
    for name in ("BROKER_URL", "DB_HOST", "REDIS_HOST", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        os.environ.pop(name, None)
    if redis_url:
        env_updates["REDIS_URL"] = redis_url
    else:
        os.environ.pop("REDIS_URL", None)
    if broker_url:
        env_updates["BROKER_URL"] = broker_url
    os.environ.update(env_updates)
    get_settings.cache_clear()
    settings = get_settings()
    upgrade(settings.sqlalchemy_url())
    open_storage(settings).ensure_bucket()
    db = Database(settings, "tests")
    return Stack(settings, dict(os.environ), database_url, redis_url, base, smtp, s3, db)


@contextmanager
def own_database(
    stack: Stack, env: dict[str, str], settings_updates: dict[str, Any]
) -> Iterator[Stack]:
    """The session's stack on a database of its own, with `env` on top of its
    environment (for the processes a test starts) and `settings_updates` on its settings
    (for the test's own API): for a test whose rows no other process may touch, not even
    the session worker's beat."""
    database_url = services.create_database(stack.database_url)
    try:
        own_env = {**stack.env, **env, "DATABASE_URL": database_url}
        settings = stack.settings.model_copy(
            update={**settings_updates, "database_url": SecretStr(database_url)}
        )
        upgrade(settings.sqlalchemy_url())
        db = Database(settings, "tests")
        try:
            yield Stack(
                settings,
                own_env,
                database_url,
                stack.redis_url,
                stack.data_dir,
                stack.smtp,
                stack.s3,
                db,
            )
        finally:
            db.dispose()
    finally:
        services.drop_database(stack.database_url, database_url)


@contextmanager
def on_own_broker(
    stack: Stack, data_dir: Path, env: dict[str, str] | None = None
) -> Iterator[Stack]:
    """`own_database` with a filesystem broker of its own too (in `data_dir`): only
    the workers the test starts run its jobs. `env`: more settings for them."""
    own_env = {"BROKER_URL": "filesystem://", "DATA_DIR": str(data_dir), **(env or {})}
    updates = {"broker_url": SecretStr("filesystem://"), "data_dir": data_dir}
    with own_database(stack, own_env, updates) as isolated:
        yield isolated
