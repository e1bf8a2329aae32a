"""Fair dispatch: which queued jobs are published, and when.

In each queue a tenant holds at most its cap of slots (`TENANT_CONCURRENCY`, or the
tenant's own `max_concurrency`; 0 is no cap). A job takes a slot when it is dispatched
(`dispatched_at`, committed before its message is published) and holds it until it
ends or waits for a retry. The tenant's other jobs wait in PostgreSQL, unpublished, in
its line for that queue, in the order they became due (submit order, for new jobs).

A slot is handed on as soon as it frees: by the worker that ran the job, by a cancel.
The reconciler's sweep (`fill_free_slots`) is the backstop: it fills whatever is free
(a process died between a job's end and the hand-off, a delayed job came due, a cap
was raised), serving the lines with jobs waiting in turn: every line's first job is
published before any line's second.

The broker's queues stay first come, first served, but hold at most a cap's worth of
each tenant's jobs, so one tenant's backlog waits in its own line instead of in front
of everyone's. Each line is dispatched under its own advisory lock, so two dispatchers
(a submit, a hand-off, the sweep) never give out one free slot twice. System jobs (no
tenant) have no cap.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from functools import cache
from itertools import zip_longest
from typing import Any

from sqlalchemy import (
    CTE,
    JSON,
    BigInteger,
    BindParameter,
    ColumnElement,
    Connection,
    Select,
    and_,
    any_,
    bindparam,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from core.db import Database
from core.jobs import lifecycle
from core.jobs.contracts import KINDS
from core.jobs.lifecycle import NOW
from core.jobs.messages import MESSAGE_COLUMNS, JobMessage
from core.jobs.states import JobStatus
from core.models import Job, Tenant
from core.prepared import Prepared

# pg_advisory_xact_lock(int, int)'s first key: the space of line locks.
LINE_LOCKS = 0x636F6E77
# The most jobs one dispatch publishes from a line with no cap.
BATCH = 500

WAITING: tuple[ColumnElement[bool], ...] = (
    Job.status == JobStatus.QUEUED,
    Job.dispatched_at.is_(None),
)
DUE = or_(Job.run_after.is_(None), Job.run_after <= NOW)
HOLDING = or_(
    Job.status == JobStatus.RUNNING,
    and_(Job.status == JobStatus.QUEUED, Job.dispatched_at.is_not(None)),
)
# Kinds this release does not know (a newer one's) are left to a process that does.
KNOWN = Job.kind.in_(list(KINDS))


def _tenant_cap(tenant_id: Any, default: Any) -> ColumnElement[int]:
    """A tenant's cap in each queue, in SQL: its own, else `default` (0: none)."""
    return func.coalesce(
        select(Tenant.max_concurrency).where(Tenant.id == tenant_id).scalar_subquery(), default
    )


def _taking(*where: ColumnElement[bool], limit: Any) -> CTE:
    """Give slots to the first `limit` due jobs waiting that match `where`: the CTE
    returns their messages and their place in line (`place`, from 1)."""
    chosen = (
        select(Job.id)
        .where(*where, *WAITING, DUE, KNOWN)
        .order_by(Job.queued_at, Job.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("chosen")
    )
    # Taken by the array of their ids (one row), not by a join with `chosen`: the
    # planner cannot know the limit, and guessing a tenth of a long line it would read
    # the whole table to join them. The array holds them in line order, which tells
    # apart the jobs of a batch (made at one moment, so alike in `queued_at` and
    # `created_at`).
    ids = select(func.array_agg(chosen.c.id).label("ids")).cte("chosen_ids")
    return (
        update(Job)
        .where(Job.id == any_(ids.c.ids))
        .values(dispatched_at=NOW)
        .returning(*MESSAGE_COLUMNS, func.array_position(ids.c.ids, Job.id).label("place"))
        .cte("taken")
    )


def _dispatching(*where: ColumnElement[bool], limit: Any) -> Select[Any]:
    """Give slots to the first `limit` due jobs waiting that match `where`, in line
    order: the statement returns their messages, in that order."""
    taken = _taking(*where, limit=limit)
    return select(*(taken.c[column.key] for column in MESSAGE_COLUMNS)).order_by(taken.c.place)


def _slots(
    tenant_id: BindParameter[Any], queue: BindParameter[Any], default_cap: BindParameter[Any]
) -> tuple[ColumnElement[int], ColumnElement[int]]:
    """The line's cap (0: none) and how many of its slots are held, in SQL: counted up
    to one past the cap, which is all any decision here needs (a job's end frees one
    slot at most). The limit also keeps the count on the line's own index: a plan
    made for any tenant (a prepared statement's) would otherwise read every queued
    job's entry in another index to count a few."""
    cap = _tenant_cap(tenant_id, default_cap)
    held = (
        select(literal(1))
        .where(Job.tenant_id == tenant_id, Job.queue == queue, HOLDING)
        .limit(cast(cap, BigInteger) + 1)  # a cap may be integer's largest
        .subquery()
    )
    return cap, select(func.count()).select_from(held).scalar_subquery()


def has_room(
    tenant_id: BindParameter[Any], queue: BindParameter[Any], default_cap: BindParameter[Any]
) -> ColumnElement[bool]:
    """Whether the line has a slot free (or no cap), in SQL."""
    cap, holding = _slots(tenant_id, queue, default_cap)
    return or_(cap == 0, holding < cap)


def _take_slots_statement() -> Select[Any]:
    # Named apart from the columns: an UPDATE takes a column's name for its new value.
    tenant_id: BindParameter[Any] = bindparam("line_tenant")
    queue: BindParameter[Any] = bindparam("line_queue")
    cap, holding = _slots(tenant_id, queue, bindparam("default_cap"))
    free = case((cap == 0, BATCH), else_=func.greatest(0, cap - holding))
    return _dispatching(Job.tenant_id == tenant_id, Job.queue == queue, limit=free)


def _handing_on(statement: Select[Any], moved: CTE) -> Select[Any]:
    """A job's end (`statement`, the job in `moved`) that also gives the slot it frees
    to its line's next due jobs: their messages, in line order, in a `handed_on` column
    (JSON). The statement's snapshot still counts the job among the slots held, so the
    job it moved counts as free; if it moved none, no slot is given."""
    tenant_id: BindParameter[Any] = bindparam("line_tenant")
    queue: BindParameter[Any] = bindparam("line_queue")
    cap, holding = _slots(tenant_id, queue, bindparam("default_cap"))
    # As stored: a kind moved to another queue by a later release frees its old one.
    freed = select(func.count()).where(moved.c.queue == queue).scalar_subquery()
    free = case((freed == 0, 0), (cap == 0, BATCH), else_=func.greatest(0, cap - holding + freed))
    taken = _taking(Job.tenant_id == tenant_id, Job.queue == queue, limit=free)
    message = func.json_build_object(
        *(part for column in MESSAGE_COLUMNS for part in (column.key, taken.c[column.key]))
    )
    handed_on = select(
        func.coalesce(
            func.json_agg(aggregate_order_by(message, taken.c.place)),
            func.json_build_array(),
        )
    ).scalar_subquery()
    return statement.add_columns(type_coerce(handed_on, JSON).label("handed_on"))


def _succeed_handing_on_statement() -> Select[Any]:
    return lifecycle.succeed_statement(extend=_handing_on)


@cache
def _system_statement() -> Select[Any]:
    return _dispatching(Job.tenant_id.is_(None), limit=BATCH)


def dispatch_line(
    executor: Session | Connection, tenant_id: uuid.UUID, queue: str, default_cap: int
) -> list[JobMessage]:
    """Give the line's free slots to its first due jobs. Their messages, in line order,
    are the caller's to publish once they are committed: at once on an autocommit
    connection, at the end of the transaction otherwise.

    The line's lock and the dispatch go to PostgreSQL in one round trip, as two
    statements (psycopg2 sends them in one query; without a transaction of the
    caller's, they are one of their own), the dispatch a prepared one. So the lock is
    held only while the server runs them, not across the network, and the count of
    slots held is right: under READ COMMITTED the dispatch's snapshot starts after the
    lock was granted, so after every earlier holder of it has committed what it gave
    out.

    Whoever makes a slot free or a job due commits that first, then dispatches: of two
    who do so at once, the one that takes the lock second sees both, so a free slot
    never waits for the sweep while a job waits for it."""
    rows = _TAKE_SLOTS.execute(
        executor,
        {
            "line_key": line_key(tenant_id, queue),
            "line_tenant": tenant_id,
            "line_queue": queue,
            "default_cap": default_cap,
        },
    )
    return [JobMessage.of_row(row) for row in rows]


def line_key(tenant_id: uuid.UUID, queue: str) -> str:
    """What names a line's lock (`line_key` of `LINE_LOCK` and `LINE_LOCK_SHARED`)."""
    return f"{tenant_id}/{queue}"


# A line's lock, held to the end of the transaction: a dispatcher takes it alone.
LINE_LOCK = f"SELECT pg_advisory_xact_lock({LINE_LOCKS}, hashtext(%(line_key)s))"
# Shared, by a submit that looks for a free slot before it dispatches: submits do not
# wait for each other, and a dispatcher waits until the submits in it have committed.
LINE_LOCK_SHARED = f"SELECT pg_advisory_xact_lock_shared({LINE_LOCKS}, hashtext(%(line_key)s))"

_TAKE_SLOTS = Prepared(
    "take_slots",
    _take_slots_statement,
    required=("line_tenant", "line_queue", "default_cap"),
    before=LINE_LOCK,
)
_SUCCEED_HANDING_ON = Prepared(
    "succeed_handing_on",
    _succeed_handing_on_statement,
    required=(*lifecycle.SUCCEED_PARAMS, "line_tenant", "line_queue", "default_cap"),
    before=LINE_LOCK,
)


def succeed_handing_on(
    connection: Connection,
    job_id: uuid.UUID,
    attempt: int,
    result: dict[str, Any],
    line: Line,
    default_cap: int,
) -> tuple[lifecycle.Finished | None, list[JobMessage]]:
    """`lifecycle.succeed`, and the hand-off of the slot it frees in `line` (the job's),
    in one statement under the line's lock: one round trip and one commit where they
    took two of each. The messages of the jobs given the slot are the caller's to
    publish once committed (at once, on an autocommit connection)."""
    tenant_id, queue = line
    params = {
        **lifecycle.succeed_params(job_id, attempt, result),
        "line_key": line_key(tenant_id, queue),
        "line_tenant": tenant_id,
        "line_queue": queue,
        "default_cap": default_cap,
    }
    rows = _SUCCEED_HANDING_ON.execute(connection, params)
    if not rows:
        return None, []
    row = rows[0]
    handed_on = [
        JobMessage.of(
            uuid.UUID(m["id"]),
            m["kind"],
            uuid.UUID(m["tenant_id"]),
            m["attempts"],
            m["input"],
            m["request_id"],
        )
        for m in row.handed_on
    ]
    return lifecycle.Finished(row.webhooks), handed_on


def _dispatch_system(session: Session) -> list[JobMessage]:
    """System jobs that came due (an email's retry): they have no cap."""
    return [JobMessage.of_row(row) for row in session.execute(_system_statement())]


Line = tuple[uuid.UUID, str]


def lines_with_room(session: Session, default_cap: int) -> list[Line]:
    """Lines with due jobs waiting and a slot free, the one waiting longest first."""
    waiting = session.execute(
        select(Job.tenant_id, Job.queue, func.min(Job.queued_at).label("since"))
        .where(Job.tenant_id.is_not(None), *WAITING, DUE, KNOWN)
        .group_by(Job.tenant_id, Job.queue)
        .order_by(func.min(Job.queued_at))
    ).all()
    if not waiting:
        return []
    tenants = list({row.tenant_id for row in waiting})
    holding = {
        (row.tenant_id, row.queue): row.held
        for row in session.execute(
            select(Job.tenant_id, Job.queue, func.count().label("held"))
            .where(Job.tenant_id.in_(tenants), HOLDING)
            .group_by(Job.tenant_id, Job.queue)
        )
    }
    caps = {
        row.id: row.cap
        for row in session.execute(
            select(
                Tenant.id, func.coalesce(Tenant.max_concurrency, default_cap).label("cap")
            ).where(Tenant.id.in_(tenants))
        )
    }
    return [
        (row.tenant_id, row.queue)
        for row in waiting
        if (cap := caps.get(row.tenant_id, default_cap)) == 0
        or holding.get((row.tenant_id, row.queue), 0) < cap
    ]


def in_turn(lines: Sequence[Sequence[JobMessage]]) -> list[JobMessage]:
    """Round robin: each line's first message, then each line's second, and so on."""
    return [message for turn in zip_longest(*lines) for message in turn if message is not None]


def fill_free_slots(db: Database, default_cap: int) -> list[JobMessage]:
    """The sweep: every line with a free slot and due jobs waiting is dispatched, each
    in a transaction of its own (a line's lock is not held for the whole sweep).
    Returns the messages to publish, lines in turn."""
    with db.transaction() as session:
        system = _dispatch_system(session)
        lines = lines_with_room(session, default_cap)
    taken: list[list[JobMessage]] = [system]
    with db.autocommit() as connection:
        for tenant_id, queue in lines:
            taken.append(dispatch_line(connection, tenant_id, queue, default_cap))
    return in_turn(taken)
