"""Prepared statements against PostgreSQL: planned once per connection, answered as
SQLAlchemy would answer, and prepared again when the server has forgotten them."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg2.errors
import pytest
from sqlalchemy import Integer, Select, bindparam, literal_column, select, text
from sqlalchemy.exc import DBAPIError

from core.db import Database
from core.jobs.states import JobStatus
from core.models import Job
from core.prepared import Prepared
from core.settings import Settings
from tests.support.factories import User, create_job
from tests.support.stack import Stack


def _queued_job() -> Select[Any]:
    return select(Job.id, Job.tenant_id, Job.input, Job.status).where(
        Job.id == bindparam("job_id"), Job.status == JobStatus.QUEUED
    )


@pytest.fixture
def settings_off(stack: Stack) -> Settings:
    return stack.settings.model_copy(update={"database_prepared_statements": False})


def prepared_here(connection: Any) -> dict[str, tuple[int, int]]:
    """The connection's prepared statements: how many times each ran a generic plan,
    and how many times it was planned again for the values given (a custom plan)."""
    rows = connection.execute(
        text("SELECT name, generic_plans, custom_plans FROM pg_prepared_statements")
    ).all()
    return {row.name: (row.generic_plans, row.custom_plans) for row in rows}


def test_a_statement_is_prepared_once_per_connection_and_answers_as_sqlalchemy_would(
    stack: Stack, db: Database, user: User
) -> None:
    statement = Prepared(f"t{uuid.uuid4().hex[:8]}", _queued_job, required=("job_id",))
    job_id = create_job(stack, user.personal_tenant_id, user, job_input={"n": 1})

    with db.autocommit() as connection:
        answers = [statement.execute(connection, {"job_id": job_id}) for _ in range(8)]
        missing = statement.execute(connection, {"job_id": uuid.uuid4()})
        plans = prepared_here(connection)

    row = answers[0][0]
    assert (row.id, row.tenant_id, row.input, row.status) == (
        job_id,
        user.personal_tenant_id,
        {"n": 1},
        "queued",
    )
    assert isinstance(row.id, uuid.UUID)
    assert all(answer == answers[0] for answer in answers)
    assert missing == []
    # Prepared once, and planned once: every run takes the generic plan (which the
    # status written into the statement lets use the indexes of queued jobs), even
    # where a plan for the values given looks cheaper.
    [name] = [name for name in plans if name.startswith(statement.name)]
    assert plans[name] == (9, 0)


def test_a_statement_the_server_forgot_is_prepared_again(
    stack: Stack, db: Database, user: User
) -> None:
    statement = Prepared(f"t{uuid.uuid4().hex[:8]}", _queued_job, required=("job_id",))
    job_id = create_job(stack, user.personal_tenant_id, user)

    with db.autocommit() as connection:
        assert len(statement.execute(connection, {"job_id": job_id})) == 1
        connection.execute(text("DEALLOCATE ALL"))  # as a pooler's reset would
        assert len(statement.execute(connection, {"job_id": job_id})) == 1
        assert any(name.startswith(statement.name) for name in prepared_here(connection))


def _divided() -> Select[Any]:
    return select((literal_column("12") / bindparam("by", type_=Integer)).label("quotient"))


def test_a_first_run_that_fails_after_its_prepare_leaves_the_statement_usable(
    db: Database,
) -> None:
    # PostgreSQL keeps a PREPARE whose query failed after it: the next run must not
    # send the same name again (`prepared statement already exists`).
    statement = Prepared(f"t{uuid.uuid4().hex[:8]}", _divided, required=("by",))
    with db.autocommit() as connection:
        with pytest.raises(DBAPIError) as failed:
            statement.execute(connection, {"by": 0})
        assert isinstance(failed.value.orig, psycopg2.errors.DivisionByZero)
        assert [row.quotient for row in statement.execute(connection, {"by": 4})] == [3]
        assert [row.quotient for row in statement.execute(connection, {"by": 3})] == [4]


def test_switched_off_the_statement_is_sent_as_text(
    stack: Stack, settings_off: Settings, user: User
) -> None:
    statement = Prepared(f"t{uuid.uuid4().hex[:8]}", _queued_job, required=("job_id",))
    job_id = create_job(stack, user.personal_tenant_id, user)
    db = Database(settings_off, "tests")
    try:
        with db.autocommit() as connection:
            assert [row.id for row in statement.execute(connection, {"job_id": job_id})] == [job_id]
            assert prepared_here(connection) == {}
    finally:
        db.dispose()


def test_in_a_transaction_a_forgotten_statement_fails_once_then_is_prepared_again(
    stack: Stack, user: User
) -> None:
    statement = Prepared(f"t{uuid.uuid4().hex[:8]}", _queued_job, required=("job_id",))
    job_id = create_job(stack, user.personal_tenant_id, user)
    db = Database(stack.settings, "tests")  # one connection, used by each transaction
    try:
        with db.transaction() as session:
            assert len(statement.execute(session.connection(), {"job_id": job_id})) == 1
            session.execute(text("DEALLOCATE ALL"))
        # The transaction it ran in is lost, not prepared again behind the caller's back.
        with pytest.raises(DBAPIError), db.transaction() as session:
            statement.execute(session.connection(), {"job_id": job_id})
        with db.transaction() as session:
            assert len(statement.execute(session.connection(), {"job_id": job_id})) == 1
    finally:
        db.dispose()


def test_every_pooled_connection_keeps_generic_plans(db: Database, settings_off: Settings) -> None:
    with db.transaction() as session:
        session.rollback()  # the setting is the connection's, not the transaction's
    with db.transaction() as session:
        assert session.execute(text("SHOW plan_cache_mode")).scalar() == "force_generic_plan"
    with db.autocommit() as connection:
        assert connection.execute(text("SHOW plan_cache_mode")).scalar() == "force_generic_plan"
    # Switched off (behind a pooler in transaction mode), the server's default stands.
    off = Database(settings_off, "tests")
    try:
        with off.autocommit() as connection:
            assert connection.execute(text("SHOW plan_cache_mode")).scalar() == "auto"
    finally:
        off.dispose()
