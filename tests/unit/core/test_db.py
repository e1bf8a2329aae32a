"""Which database errors the job protocol waits out, and how `retrying` waits."""

from __future__ import annotations

import time

import psycopg2
import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

from core.db import is_unavailable, retrying


@pytest.mark.parametrize(
    "error",
    [
        # As SQLAlchemy raises them from a statement.
        OperationalError("SELECT 1", {}, psycopg2.OperationalError("server closed")),
        InterfaceError("SELECT 1", {}, psycopg2.InterfaceError("connection already closed")),
        DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True),
        # Straight from the driver, as when a connection is returned to the pool.
        psycopg2.OperationalError("terminating connection due to administrator command"),
        psycopg2.InterfaceError("connection already closed"),
    ],
)
def test_a_database_gone_away_is_waited_out_however_it_is_raised(error: Exception) -> None:
    assert is_unavailable(error)


@pytest.mark.parametrize(
    "error",
    [
        IntegrityError("INSERT", {}, psycopg2.IntegrityError("duplicate key")),
        psycopg2.ProgrammingError("syntax error"),
        ValueError("not a database error"),
    ],
)
def test_other_errors_are_not(error: Exception) -> None:
    assert not is_unavailable(error)


def test_retrying_tries_again_until_the_database_answers() -> None:
    calls = 0

    def work() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise psycopg2.OperationalError("the database system is starting up")
        return "written"

    assert retrying("write", work, deadline=time.monotonic() + 30) == "written"
    assert calls == 3


def test_retrying_raises_other_errors_at_once() -> None:
    calls = 0

    def work() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError, match="a bug"):
        retrying("write", work, deadline=time.monotonic() + 30)
    assert calls == 1


def test_retrying_gives_up_at_the_deadline() -> None:
    def work() -> None:
        raise psycopg2.OperationalError("connection refused")

    with pytest.raises(psycopg2.OperationalError):
        retrying("write", work, deadline=time.monotonic())
