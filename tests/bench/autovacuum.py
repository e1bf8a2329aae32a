"""PostgreSQL as a user runs it: autovacuum on, and tables with statistics.

A server set up for tests may run with `autovacuum = off`. Its tables then never get
statistics, and a prepared statement planned while the bench's new database was
nearly empty keeps that plan for the whole run: on the line's hand-off, a sequential
scan of `jobs` that reads every row of it (256 buffers a hand-off by the end of a
`make bench`). A server with PostgreSQL's default settings analyzes the table within a
minute, and the plan is made again then.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from tests.bench.output import say

# How long a reload of the server's configuration may take to show.
RELOAD_SECONDS = 10.0


@contextmanager
def autovacuum_on(engine: Engine) -> Iterator[None]:
    """Autovacuum on while the bench runs, then as it was. If it is off and cannot be
    turned on (no superuser), the run goes on with a warning. `engine`: autocommit, on
    any database of the server; disposed of at the end."""
    try:
        with engine.connect() as connection:
            was_on = _autovacuum(connection)
            own_setting = _own_setting(connection)
        turned_on = False
        if not was_on:
            try:
                _set(engine, "on")
                turned_on = True
                say("autovacuum is off on this server: on for the run (PostgreSQL's default)")
            except DBAPIError as exc:
                say(
                    "warning: autovacuum is off on this server and could not be turned on "
                    f"({type(exc.orig).__name__}): the figures are for tables that never get "
                    "statistics, not as PostgreSQL's default settings run them"
                )
        try:
            yield
        finally:
            if turned_on:
                _set(engine, own_setting)
                say("autovacuum: back as it was")
    finally:
        engine.dispose()


def analyze(db: Engine) -> None:
    """Statistics of every table, as autovacuum leaves them after a phase's changes.
    Untimed: the bench's database is new, while a user's has been analyzed for long."""
    with db.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))


def _autovacuum(connection: Connection) -> bool:
    return bool(connection.execute(text("SHOW autovacuum")).scalar_one() == "on")


def _own_setting(connection: Connection) -> str | None:
    """autovacuum's value in postgresql.auto.conf (ALTER SYSTEM), None if not set there."""
    row = connection.execute(
        text("SELECT setting, sourcefile FROM pg_settings WHERE name = 'autovacuum'")
    ).one()
    set_by_alter_system = row.sourcefile is not None and row.sourcefile.endswith(
        "postgresql.auto.conf"
    )
    return str(row.setting) if set_by_alter_system else None


def _set(engine: Engine, value: str | None) -> None:
    """ALTER SYSTEM autovacuum to `value` (None: reset), reload, and wait until it shows."""
    with engine.connect() as connection:
        if value is None:
            connection.execute(text("ALTER SYSTEM RESET autovacuum"))
        else:
            connection.execute(text(f"ALTER SYSTEM SET autovacuum = {value}"))
        connection.execute(text("SELECT pg_reload_conf()"))
    want = value or "off"
    deadline = time.monotonic() + RELOAD_SECONDS
    while time.monotonic() < deadline:
        with engine.connect() as connection:  # a new backend reads the reloaded file
            if connection.execute(text("SHOW autovacuum")).scalar_one() == want:
                return
        time.sleep(0.1)
    say(f"warning: autovacuum did not show {want} within {RELOAD_SECONDS:.0f} s")
