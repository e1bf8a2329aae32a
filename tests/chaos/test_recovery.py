"""Nothing submitted is lost: a broker outage at submit."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from core.db import Database
from core.models import Job
from tests.support import jobs
from tests.support.factories import create_user
from tests.support.stack import Stack
from tests.support.tcp_proxy import TcpProxy
from tests.support.worker import WorkerProcess


@contextmanager
def stack_db(stack: Stack) -> Iterator[Database]:
    db = Database(stack.settings, "tests")
    try:
        yield db
    finally:
        db.dispose()


@pytest.fixture
def broker_proxy(stack: Stack) -> Iterator[TcpProxy]:
    if stack.redis_url is None:
        pytest.skip("needs Redis as the broker (REDIS_URL)")
    parts = urlsplit(stack.redis_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 6379)
    proxy.start()
    yield proxy
    proxy.stop()


def test_submit_while_broker_down_answers_202_and_runs_later(
    stack: Stack, worker: WorkerProcess, broker_proxy: TcpProxy
) -> None:
    from api.app import create_app

    assert stack.redis_url is not None
    parts = urlsplit(stack.redis_url)
    via_proxy = urlunsplit(parts._replace(netloc=f"127.0.0.1:{broker_proxy.port}"))
    settings = stack.settings.model_copy(update={"broker_url": SecretStr(via_proxy)})
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        user = create_user(stack)
        broker_proxy.stop()

        job = jobs.submit(client, user.headers, "diagnostics.echo", {"survived": True})

        assert job["status"] == "queued"
        app.state.conveyor.publisher.close()  # writes every record it holds
        with stack_db(stack) as db, db.transaction() as session:
            # The publish really failed: nothing but the reconciler can send this job.
            assert session.get_one(Job, uuid.UUID(job["id"])).enqueued_at is None
        broker_proxy.start()
        # Nothing re-sends this job but the reconciler (beat, in the worker process).
        done = jobs.wait_for(client, user.headers, job["id"], timeout=30)
    assert done["status"] == "succeeded"
    assert done["result"] == {"survived": True}
    assert done["attempts"] == 1
