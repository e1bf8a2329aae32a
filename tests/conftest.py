"""Session-wide test services, and a clean database for every test that uses one.

Layout: tests/unit/ (no servers) and tests/integration/ (real PostgreSQL, Redis, S3 and
SMTP servers, real worker processes) mirror the source tree. The tests of
`core/identity/sessions.py` are in `tests/<kind>/core/identity/test_sessions.py`; those
of a package's `__init__.py` in `test_<package>.py` inside it (`core/kv/test_kv.py`); a
module with more than one file's worth has `test_<module>_<aspect>.py` besides. Tests
that drive the API over HTTP sit with the module whose rules they check (login sessions
in core/identity/test_sessions.py, the jobs endpoints in api/routers/test_jobs.py);
properties of the whole API sit in tests/integration/api/ under their own names
(test_tenant_isolation, test_fuzz, test_openapi_conformance). test_migrations.py checks
migrations/; tests/chaos/ kills and cuts processes; tests/e2e/ runs whole
deployments; helpers shared between test modules live in tests/support/.

The services (tests/support/stack.py): one fresh database built by the migrations, the
broker, S3 and SMTP servers, per pytest process; under pytest-xdist, per worker.

Isolation: every test that uses the database starts with every table empty; the rows
are deleted before it runs (tests/support/rows.py `empty_tables`), and its mailbox is
emptied too. Not a transaction rolled back at the end of the test: what these tests
check is written by code that commits on connections of its own (the API's requests
and its background writer, the job protocol's autocommit statements, and real worker
and beat subprocesses), so a transaction held open by the test would hide their writes
from the test and the test's rows from them, and a race between two requests would run
on one connection. Emptying costs a few milliseconds when the tables hold one test's
rows. A job the previous test left running loses its row: its worker stops at its next
checkpoint, and its broker message, if any is left, finds nothing to claim.

So no fixture wider than a test may hold rows: make them per test with the factories
(tests/support/factories.py), which write users, tenants, keys and jobs directly.
Redis is not flushed between tests (it is the live broker of the session's worker);
tests that use it directly use keys of their own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from core.db import Database
from tests.support.factories import User, create_user
from tests.support.rows import empty_tables
from tests.support.stack import Stack, running_stack

# Where test modules used to import them from.
__all__ = ["Stack", "User"]
from tests.support.worker import WorkerProcess

# The chaos suite's summary, printed by the process that reports (xdist's controller).
pytest_plugins = ["tests.support.chaos_report"]


# Tests that send jobs through the broker to real workers: `make test` runs them a
# second time on RabbitMQ (CONVEYOR_TEST_BROKER=rabbitmq).
WORKER_FIXTURES = {"worker", "agents_worker"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if WORKER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker("broker")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("stack")) as services:
        yield services


@pytest.fixture(scope="session")
def db(stack: Stack) -> Database:
    """A connection pool on the test database, for factories and for reading rows a
    client cannot see."""
    return stack.db


@pytest.fixture(autouse=True)
def _clean_database(request: pytest.FixtureRequest) -> None:
    if "stack" not in request.fixturenames:
        return  # a test without the database
    stack: Stack = request.getfixturevalue("stack")
    empty_tables(stack.db)
    stack.smtp.clear()


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


@pytest.fixture
def user(stack: Stack) -> User:
    return create_user(stack)


@pytest.fixture
def other_user(stack: Stack) -> User:
    return create_user(stack)
