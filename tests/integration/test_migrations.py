"""The migrations build the schema from nothing and take it away again."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect

from core.migrate import downgrade, upgrade
from core.settings import psycopg2_url
from tests.conftest import Stack
from tests.support import services


def test_upgrade_downgrade_upgrade_on_an_empty_database(stack: Stack) -> None:
    url = services.create_database(stack.database_url)
    try:
        upgrade(url)
        engine = create_engine(psycopg2_url(url))
        tables = set(inspect(engine).get_table_names())
        assert {"tenants", "users", "memberships", "jobs", "job_events"} <= tables
        downgrade(url, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade(url)
        assert "jobs" in inspect(engine).get_table_names()
        engine.dispose()
    finally:
        services.drop_database(stack.database_url, url)
