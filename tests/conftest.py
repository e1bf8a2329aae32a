"""Session-wide test services: one fresh migrated database, the broker, and settings
exported to the environment so in-process code and worker subprocesses agree."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from core.db import Database
from core.migrate import upgrade
from core.settings import Settings, get_settings
from core.storage import open_storage
from tests.support import services
from tests.support.s3 import FAKE_KEY, FAKE_SECRET, REGION, MotoS3Server, new_bucket_name
from tests.support.smtp import SmtpServer
from tests.support.worker import WorkerProcess

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
    "RESET_LIMIT_PER_IP": "1000000",
    "RESET_LIMIT_PER_ACCOUNT": "1000000",
    "REGISTER_LIMIT_PER_IP": "1000000",
    "INVITE_LIMIT_PER_IP": "1000000",
    "INVITE_LIMIT_PER_RECIPIENT": "1000000",
    "SMTP_TLS": "none",
}


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


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("stack")
    with services.postgres_server(base) as server, SmtpServer() as smtp, MotoS3Server() as s3:
        yield from _stack(base, server, smtp, s3)


def _stack(base: Path, server: str, smtp: SmtpServer, s3: MotoS3Server) -> Iterator[Stack]:
    database_url = services.create_database(server)
    redis_url = services.redis_url()
    if redis_url:
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
    os.environ.update(env_updates)
    get_settings.cache_clear()
    settings = get_settings()
    upgrade(settings.sqlalchemy_url())
    open_storage(settings).ensure_bucket()
    yield Stack(settings, dict(os.environ), database_url, redis_url, base, smtp, s3)
    services.drop_database(server, database_url)


@pytest.fixture
def db(stack: Stack) -> Iterator[Database]:
    """A connection pool on the test database, for reading rows a client cannot see."""
    database = Database(stack.settings, "tests")
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def app_client(stack: Stack) -> Iterator[TestClient]:
    from api.app import create_app

    with TestClient(create_app(stack.settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="session")
def worker(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(stack.env, tmp_path_factory.mktemp("worker"))
    yield proc
    proc.stop()


@dataclass(frozen=True)
class User:
    email: str
    password: str
    token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def create_user(client: TestClient, password: str = "correct horse battery") -> User:
    email = f"user-{uuid.uuid4().hex[:12]}@example.com"
    response = client.post("/api/v1/auth/register", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    response = client.post("/api/v1/auth/login", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    tokens = response.json()
    return User(email, password, tokens["access_token"], tokens["refresh_token"])


@pytest.fixture
def user(app_client: TestClient) -> User:
    return create_user(app_client)


@pytest.fixture
def other_user(app_client: TestClient) -> User:
    return create_user(app_client)
