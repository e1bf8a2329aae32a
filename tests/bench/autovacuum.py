"""PostgreSQL as a user runs it: autovacuum on, and tables with statistics.

A server set up for tests may run with `autovacuum = off`. Its tables then never get
statistics, and a prepared statement planned while the bench's new database was
nearly empty keeps that plan for as long as its connection lives (the whole run): on
the line's hand-off, a sequential scan of `jobs`. A server with PostgreSQL's default
settings analyzes the table within a minute, and the plan is made again then.

The setting is the server's: while a bench runs, every database of the server has
autovacuum on, and two benches on one server would undo each other's setting.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from tests.bench.output import say

# How long a reload of the server's configuration may take to show.
RELOAD_SECONDS = 10.0
# Where ALTER SYSTEM writes, and so where a value can be set and set back.
AUTO_CONF = "postgresql.auto.conf"
# Sources of a setting that outrank ALTER SYSTEM.
FIXED_SOURCES = ("command line", "environment variable")


@contextmanager
def autovacuum_on(engine: Engine) -> Iterator[None]:
    """Autovacuum on while the bench runs, then as it was. If it is off and cannot be
    turned on (no superuser, or fixed on the server's command line), the run goes on
    with a warning. `engine`: autocommit, on any database of the server; disposed of
    at the end."""
    try:
        with engine.connect() as connection:
            setting = _setting(connection)
        if setting.setting == "on":
            yield
            return
        if setting.source in FIXED_SOURCES or (
            setting.source == "configuration file" and setting.sourcefile is None
        ):
            # Set where ALTER SYSTEM cannot override it, or in a file this role may not
            # see (so possibly in postgresql.auto.conf, which a restore would lose).
            _warn(f"it is set by the server's {setting.source}")
            yield
            return
        own = setting.setting if str(setting.sourcefile or "").endswith(AUTO_CONF) else None
        back = f"ALTER SYSTEM SET autovacuum = {own}" if own else "ALTER SYSTEM RESET autovacuum"
        changed = False
        try:
            try:
                with engine.connect() as connection:
                    connection.execute(text("ALTER SYSTEM SET autovacuum = on"))
                    changed = True  # written to the file at once, reloaded or not
                    connection.execute(text("SELECT pg_reload_conf()"))
                if _shown(engine, "on"):
                    say(
                        "autovacuum is off on this server: on for the run (PostgreSQL's "
                        f"default); if the run is killed, set it back with `{back}; "
                        "SELECT pg_reload_conf();`"
                    )
            except DBAPIError as exc:
                _warn(type(exc.orig).__name__)
            yield
        finally:
            if changed:
                _restore(engine, own, back)
    finally:
        engine.dispose()


def analyze(db: Engine) -> None:
    """Statistics of every table, as autovacuum leaves them after a phase's changes.
    Untimed: the bench's database is new, while a user's has been analyzed for long."""
    with db.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))


def _warn(why: str) -> None:
    say(
        f"warning: autovacuum is off on this server and could not be turned on ({why}): "
        "the figures are for tables that never get statistics, not as PostgreSQL's "
        "default settings run them"
    )


def _restore(engine: Engine, own: str | None, back: str) -> None:
    """Autovacuum as it was; never fails the run: a setting left on is said, with the
    way back."""
    try:
        with engine.connect() as connection:
            connection.execute(text(back))
            connection.execute(text("SELECT pg_reload_conf()"))
        if _shown(engine, own):
            say("autovacuum: back as it was")
    except DBAPIError as exc:
        say(
            f"warning: autovacuum not set back ({type(exc.orig).__name__}): run "
            f"`{back}; SELECT pg_reload_conf();`"
        )


def _shown(engine: Engine, value: str | None) -> bool:
    """Whether a new backend (one that read the reloaded files) shows autovacuum set to
    `value` (None: no longer by ALTER SYSTEM), waiting for the reload to take."""
    deadline = time.monotonic() + RELOAD_SECONDS
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            if _shows(connection, value):
                return True
        time.sleep(0.1)
    say(f"warning: autovacuum did not show {value or 'its own setting'} in {RELOAD_SECONDS:.0f} s")
    return False


def _setting(connection: Connection) -> Any:
    """autovacuum's value, and where it comes from (`source`, `sourcefile`)."""
    return connection.execute(
        text("SELECT setting, source, sourcefile FROM pg_settings WHERE name = 'autovacuum'")
    ).one()


def _shows(connection: Connection, value: str | None) -> bool:
    row = _setting(connection)
    if value is None:  # reset: no longer from postgresql.auto.conf
        return not str(row.sourcefile or "").endswith(AUTO_CONF)
    return bool(row.setting == value)
