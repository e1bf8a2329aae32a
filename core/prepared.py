"""The hottest statements, planned once per connection.

psycopg2 sends every statement as text, and PostgreSQL parses and plans it each time.
For the statements every job runs (data-modifying CTEs over a table with many indexes)
planning costs as much as running them. A `Prepared` statement is compiled by
SQLAlchemy once per process, PREPAREd on a connection the first time that connection
runs it (in the same round trip), and from then on sent as `EXECUTE name(values)`:
PostgreSQL keeps its plan. It also skips SQLAlchemy's work per execution, which for a
statement of one row costs more CPU than the driver.

A pooler that does not keep a session's prepared statements (PgBouncer in transaction
mode) needs `DATABASE_PREPARED_STATEMENTS=false`: the statements are then sent as text.
"""

from __future__ import annotations

import re
import threading
from collections import namedtuple
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg2.errors
import psycopg2.extensions
from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.types import TypeEngine

# The execution option (set on the engines by `core.db.Database`) that turns this on.
OPTION = "conveyor_prepared_statements"
# Where a connection keeps the name each statement is prepared under, and how many
# PREPAREs it has sent.
_PREPARED_KEY = "conveyor_prepared"
_PREPARES_KEY = "conveyor_prepares"

# What a prepared statement that can no longer run fails with.
_STALE = (psycopg2.errors.InvalidSqlStatementName, psycopg2.errors.FeatureNotSupported)

_PLACEHOLDER = re.compile(r"%\(([^)]+)\)s")


@dataclass(frozen=True)
class _Compiled:
    text: str  # for the driver, with pyformat placeholders
    prepare: str  # the statement to PREPARE, with positional parameters
    args: str  # what EXECUTE takes after the name, with pyformat placeholders
    bind: dict[str, Callable[[Any], Any]]  # the bind processors of the values given
    row: Any  # a namedtuple of the columns returned
    types: tuple[TypeEngine[Any], ...]  # their types, as the dialect implements them


class Prepared:
    """One statement, named `conveyor_<name>` on the server. `build` makes it (once),
    `required` names its parameters with no value of their own; `before` is SQL sent
    ahead of it in the same round trip (a lock it must hold)."""

    def __init__(
        self,
        name: str,
        build: Callable[[], ClauseElement],
        *,
        required: tuple[str, ...],
        before: str = "",
    ) -> None:
        self.name = f"conveyor_{name}"
        self._build = build
        self._required = required
        self._before = before
        self._compiled: dict[str, _Compiled] = {}
        self._lock = threading.Lock()
        # The result processors, by dialect: some need the driver's type of the column.
        self._results: dict[str, tuple[Callable[[Any], Any] | None, ...]] = {}

    def execute(self, executor: Session | Connection, params: Mapping[str, Any]) -> list[Any]:
        """The statement's rows (attributes by column name, values as SQLAlchemy would
        give them), run in the session's or connection's transaction, or alone on an
        autocommit connection. Parameters of `before` go in `params` too, as the driver
        takes them."""
        connection = executor.connection() if isinstance(executor, Session) else executor
        compiled = self._compile(connection.dialect)
        values = {}
        for key, value in params.items():
            process = compiled.bind.get(key)
            values[key] = process(value) if process is not None and value is not None else value
        if not connection.get_execution_options().get(OPTION, False):
            return self._run(connection, compiled, compiled.text, values)
        info = connection.connection.info
        prepared: dict[str, str] = info.setdefault(_PREPARED_KEY, {})
        name = prepared.get(self.name)
        if name is not None:
            try:
                return self._run(connection, compiled, f"EXECUTE {name}{compiled.args}", values)
            except DBAPIError as exc:
                if not isinstance(exc.orig, _STALE):
                    raise
                # The server forgot it (a reset), or its plan no longer fits the table
                # (a column's type changed): prepared again, at once where nothing else
                # of the caller's was undone with it, else on the connection's next run.
                del prepared[self.name]
                if not autocommits(connection):
                    raise
        # A query whose PREPARE went through may still fail after it, and PostgreSQL does
        # not take a PREPARE back with the transaction: so each PREPARE on a connection
        # has a name of its own, and a failed one is never sent under the same name.
        info[_PREPARES_KEY] = sent = info.get(_PREPARES_KEY, 0) + 1
        name = f"{self.name}_{sent}"
        sql = f"PREPARE {name} AS {compiled.prepare};\nEXECUTE {name}{compiled.args}"
        rows = self._run(connection, compiled, sql, values)
        prepared[self.name] = name
        return rows

    def _run(
        self, connection: Connection, compiled: _Compiled, sql: str, values: dict[str, Any]
    ) -> list[Any]:
        text = f"{self._before};\n{sql}" if self._before else sql
        result = connection.exec_driver_sql(text, values)
        if not result.returns_rows:
            return []
        dialect = connection.dialect
        processors = self._results.get(dialect.name)
        if processors is None:
            described = result.cursor.description or ()
            processors = self._results[dialect.name] = tuple(
                type_.result_processor(dialect, column[1])
                for type_, column in zip(compiled.types, described, strict=True)
            )
        return [
            compiled.row(
                *(
                    process(value) if process is not None and value is not None else value
                    for process, value in zip(processors, raw, strict=True)
                )
            )
            for raw in result.fetchall()
        ]

    def _compile(self, dialect: Dialect) -> _Compiled:
        found = self._compiled.get(dialect.name)
        if found is None:
            # Once, by one thread: an API's first burst of requests all get here at once.
            with self._lock:
                found = self._compiled.get(dialect.name)
                if found is None:
                    found = self._compiled[dialect.name] = _compile(
                        self._build(), self._required, dialect
                    )
        return found


def autocommits(connection: Connection) -> bool:
    """Whether each statement on `connection` commits on its own (no transaction open)."""
    driver: Any = connection.connection.dbapi_connection
    return bool(driver.autocommit)


def _literal(value: Any) -> str:
    """A fixed value (a status, a kind, a number) as SQL, quoted by the driver."""
    quoted: bytes = psycopg2.extensions.adapt(value).getquoted()
    return quoted.decode().replace("%", "%%")


def _compile(statement: ClauseElement, required: tuple[str, ...], dialect: Dialect) -> _Compiled:
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    # IN lists rendered into the text, with placeholder values for the parameters
    # each execution gives.
    expanded = compiled.construct_expanded_state({key: None for key in required})
    processors = {
        key: process
        for key, bind in compiled.binds.items()
        if (process := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
    }
    fixed = {
        key: processors[key](value) if key in processors and value is not None else value
        for key, value in expanded.parameters.items()
        if key not in required
    }
    # The values fixed at compile time are written into the statement, so that its
    # plan can use the partial indexes their conditions match (`status = 'queued'`).
    text = _PLACEHOLDER.sub(
        lambda m: _literal(fixed[m.group(1)]) if m.group(1) in fixed else m.group(0),
        expanded.statement,
    )
    order: list[str] = []
    for key in _PLACEHOLDER.findall(text):
        if key not in order:
            order.append(key)
    numbered = _PLACEHOLDER.sub(lambda m: f"${order.index(m.group(1)) + 1}", text)
    columns = compiled._result_columns or []  # what the statement returns, and their types
    return _Compiled(
        text=text,
        # Sent through the driver with the values, so a literal % stays doubled.
        prepare=numbered,
        args=f"({', '.join(f'%({key})s' for key in order)})",
        bind={key: processors[key] for key in required if key in processors},
        row=namedtuple("Row", [column.keyname for column in columns], rename=True),
        types=tuple(column.type.dialect_impl(dialect) for column in columns),
    )
