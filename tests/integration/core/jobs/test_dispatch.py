"""Fair dispatch against PostgreSQL: which jobs a submit, a hand-off and the sweep send,
with the reconciler held off so that what is dispatched is the test's own doing."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from core.db import Database
from core.jobs import dispatch, lifecycle
from core.jobs.contracts import ECHO
from core.jobs.publishing import PendingPublishes
from core.jobs.states import WaitingReason
from core.jobs.submit import Submitted, submit
from core.models import Job, Tenant
from core.settings import Settings
from tests.support.factories import User, create_user
from tests.support.reconciler import reconciler_held_off
from tests.support.rows import finish_unhanded
from tests.support.stack import Stack

CAP = 2


@pytest.fixture(autouse=True)
def held_off(db: Database) -> Iterator[None]:
    with reconciler_held_off(db):
        yield


@pytest.fixture
def settings(stack: Stack) -> Settings:
    return stack.settings.model_copy(update={"tenant_concurrency": CAP})


def submit_jobs(
    db: Database, settings: Settings, tenant_id: uuid.UUID | None, count: int
) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """(the jobs submitted, the ones sent at once), each submitted in its own request."""
    submitted, sent = [], []
    for n in range(count):
        made, sent_after = submit_one(db, settings, tenant_id, n)
        submitted.append(made.job.id)
        sent += sent_after
    return submitted, sent


def submit_one(
    db: Database, settings: Settings, tenant_id: uuid.UUID | None, n: int, *, alone: bool = False
) -> tuple[Submitted, list[uuid.UUID]]:
    """A submit in a request of its own, and the jobs sent after it. `alone`: as
    `POST /jobs` makes it, its statement committing as it runs; else in a transaction."""
    publisher = PendingPublishes()
    with db.reads() if alone else db.transaction() as session:
        submitted = submit(
            session,
            publisher,
            tenant_id=tenant_id,
            user_id=None,
            kind_name=ECHO,
            raw_input={"n": n},
            settings=settings,
        )
    return submitted, [m.job_id for m in publisher.committed(db, settings.tenant_concurrency)]


def reasons(db: Database, job_ids: list[uuid.UUID]) -> list[WaitingReason | None]:
    with db.transaction() as session:
        found = {job.id: job for job in session.scalars(select(Job).where(Job.id.in_(job_ids)))}
        return [found[job_id].waiting_reason for job_id in job_ids]


def hand_off(db: Database, settings: Settings, tenant_id: uuid.UUID) -> list[uuid.UUID]:
    with db.transaction() as session:
        messages = dispatch.dispatch_line(
            session, tenant_id, "default", settings.tenant_concurrency
        )
    return [message.job_id for message in messages]


def set_cap(db: Database, tenant_id: uuid.UUID, cap: int | None) -> None:
    with db.transaction() as session:
        session.execute(update(Tenant).where(Tenant.id == tenant_id).values(max_concurrency=cap))


def test_jobs_beyond_the_cap_wait_in_their_tenants_line(
    db: Database, settings: Settings, user: User
) -> None:
    submitted, sent = submit_jobs(db, settings, user.personal_tenant_id, 5)

    assert sent == submitted[:CAP]
    assert reasons(db, submitted) == [WaitingReason.BROKER] * CAP + [WaitingReason.TENANT_LIMIT] * 3
    # Nothing frees a slot until a job ends; then the line's next job goes, in order.
    assert hand_off(db, settings, user.personal_tenant_id) == []
    finish_unhanded(db, submitted[1])
    assert hand_off(db, settings, user.personal_tenant_id) == [submitted[2]]
    finish_unhanded(db, submitted[0])
    finish_unhanded(db, submitted[2])
    assert hand_off(db, settings, user.personal_tenant_id) == submitted[3:]


def test_a_tenants_own_cap_replaces_the_setting(
    db: Database, settings: Settings, user: User, other_user: User
) -> None:
    set_cap(db, user.personal_tenant_id, 3)
    set_cap(db, other_user.personal_tenant_id, 0)  # no cap at all

    assert len(submit_jobs(db, settings, user.personal_tenant_id, 5)[1]) == 3
    assert len(submit_jobs(db, settings, other_user.personal_tenant_id, 5)[1]) == 5


def test_with_no_cap_every_job_is_sent(db: Database, settings: Settings, user: User) -> None:
    uncapped = settings.model_copy(update={"tenant_concurrency": 0})
    submitted, sent = submit_jobs(db, uncapped, user.personal_tenant_id, 12)
    assert sent == submitted


def test_system_jobs_have_no_cap(db: Database, settings: Settings) -> None:
    submitted, sent = submit_jobs(db, settings, None, CAP + 3)
    assert sent == submitted


def test_the_sweep_serves_the_lines_in_turn(db: Database, settings: Settings, stack: Stack) -> None:
    a, b, c = (create_user(stack) for _ in range(3))
    lines = {
        user.personal_tenant_id: submit_jobs(db, settings, user.personal_tenant_id, 4)[0]
        for user in (a, b, c)
    }
    # Every sent job ends with no hand-off (its worker died, say): the sweep finds room.
    for job_ids in lines.values():
        for job_id in job_ids[:CAP]:
            finish_unhanded(db, job_id)

    swept = [m.job_id for m in dispatch.fill_free_slots(db, settings.tenant_concurrency)]

    # The tenant waiting longest first, then one job of each line per turn.
    expected = [lines[user.personal_tenant_id][CAP] for user in (a, b, c)]
    expected += [lines[user.personal_tenant_id][CAP + 1] for user in (a, b, c)]
    assert swept == expected
    assert dispatch.fill_free_slots(db, settings.tenant_concurrency) == []


def test_a_retry_gives_its_slot_to_the_next_job_and_waits_in_line_when_due(
    db: Database, settings: Settings, user: User
) -> None:
    submitted, _ = submit_jobs(db, settings, user.personal_tenant_id, 3)
    with db.autocommit() as connection:
        claim = lifecycle.claim(connection, submitted[0], 30, "tests/1/0")
        assert claim is not None
        error = lifecycle.JobError("transient_error", "try again", retryable=True)
        assert lifecycle.requeue(
            connection, claim.job_id, claim.attempt, reason="retry", error=error, retry_in=60
        )

    assert reasons(db, submitted)[0] == WaitingReason.SCHEDULED
    assert hand_off(db, settings, user.personal_tenant_id) == [submitted[2]]

    # Its backoff over, it waits for a slot like any job, and is first in line for one.
    with db.transaction() as session:
        session.execute(update(Job).where(Job.id == submitted[0]).values(run_after=func.now()))
    assert reasons(db, submitted)[0] == WaitingReason.TENANT_LIMIT
    assert hand_off(db, settings, user.personal_tenant_id) == []
    finish_unhanded(db, submitted[2])
    assert hand_off(db, settings, user.personal_tenant_id) == [submitted[0]]


def test_a_copy_of_a_message_cannot_run_a_job_still_in_line(
    db: Database, settings: Settings, user: User
) -> None:
    submitted, _ = submit_jobs(db, settings, user.personal_tenant_id, CAP + 1)
    with db.autocommit() as connection:
        assert lifecycle.claim(connection, submitted[-1], 30, "tests/1/0") is None


def test_concurrent_submits_never_pass_the_cap(
    db: Database, settings: Settings, user: User
) -> None:
    def one(_: Any) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
        return submit_jobs(db, settings, user.personal_tenant_id, 3)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))

    assert sum(len(sent) for _, sent in results) == CAP
    with db.transaction() as session:
        holding = session.execute(
            select(func.count()).where(Job.tenant_id == user.personal_tenant_id, dispatch.HOLDING)
        ).scalar_one()
    assert holding == CAP


def submit_alone(
    db: Database, settings: Settings, tenant_id: uuid.UUID, n: int
) -> tuple[Submitted, list[uuid.UUID]]:
    return submit_one(db, settings, tenant_id, n, alone=True)


def test_a_submit_that_commits_alone_dispatches_only_if_it_saw_a_slot_free(
    db: Database, settings: Settings, user: User
) -> None:
    tenant_id = user.personal_tenant_id
    made = [submit_alone(db, settings, tenant_id, n) for n in range(CAP + 2)]

    assert [submitted.line_full for submitted, _ in made] == [False] * CAP + [True] * 2
    assert [sent for _, sent in made] == [[s.job.id] for s, _ in made[:CAP]] + [[], []]
    assert [s.job.waiting_reason for s, _ in made] == [WaitingReason.BROKER] * CAP + [
        WaitingReason.TENANT_LIMIT
    ] * 2
    # A slot freed and not handed on (its worker died): the next submit sees it free,
    # and the line's first job in waiting takes it, not the newcomer.
    finish_unhanded(db, made[0][0].job.id)
    submitted, sent = submit_alone(db, settings, tenant_id, CAP + 2)
    assert not submitted.line_full
    assert sent == [made[CAP][0].job.id]
    assert submitted.job.waiting_reason is WaitingReason.TENANT_LIMIT


def test_a_dispatcher_waits_for_a_submit_that_saw_the_line_full(
    db: Database, settings: Settings, user: User
) -> None:
    """The submit's insert holds the line's shared lock until it commits: a worker that
    frees a slot while the insert runs dispatches after that, and sees the job."""
    tenant_id = user.personal_tenant_id
    held = [submit_alone(db, settings, tenant_id, n)[0].job.id for n in range(CAP)]
    with ThreadPoolExecutor(2) as pool:
        with db.transaction() as session:
            # The insert checks its tenant at its end (the foreign key): held there,
            # after it saw the line full.
            session.execute(select(Tenant).where(Tenant.id == tenant_id).with_for_update())
            submitting = pool.submit(submit_alone, db, settings, tenant_id, CAP)
            assert not lock_granted(submitting)
            finish_unhanded(db, held[0])
            handing_off = pool.submit(hand_off, db, settings, tenant_id)
            assert not lock_granted(handing_off)
        submitted, sent = submitting.result(timeout=30)
        assert submitted.line_full
        assert sent == []
        assert handing_off.result(timeout=30) == [submitted.job.id]


def test_a_submit_waits_for_a_dispatcher_and_sees_the_slot_it_freed(
    db: Database, settings: Settings, user: User
) -> None:
    tenant_id = user.personal_tenant_id
    held = [submit_alone(db, settings, tenant_id, n)[0].job.id for n in range(CAP)]
    with ThreadPoolExecutor(1) as pool, db.transaction() as session:
        # A worker's hand-off: its job's end committed, the line's lock taken.
        finish_unhanded(db, held[0])
        session.connection().exec_driver_sql(
            dispatch.LINE_LOCK, {"line_key": f"{tenant_id}/default"}
        )
        submitting = pool.submit(submit_alone, db, settings, tenant_id, CAP)
        assert not lock_granted(submitting)
        session.commit()
        submitted, sent = submitting.result(timeout=30)
    assert not submitted.line_full
    assert sent == [submitted.job.id]


def lock_granted(work: Future[Any]) -> bool:
    """Whether `work` got past the line's lock held by the test (it would be done)."""
    try:
        work.result(timeout=0.5)
    except FuturesTimeout:
        return False
    return True


def test_submits_and_hand_offs_at_once_never_pass_the_cap(
    db: Database, settings: Settings, user: User
) -> None:
    tenant_id = user.personal_tenant_id

    def submitter(worker: int) -> None:
        for n in range(8):
            submit_alone(db, settings, tenant_id, worker * 100 + n)

    def finisher(stop: threading.Event) -> None:
        while not stop.is_set():
            with db.autocommit() as connection:
                held = connection.execute(
                    select(Job.id)
                    .where(Job.tenant_id == tenant_id, dispatch.HOLDING)
                    .order_by(func.random())
                    .limit(1)
                ).scalar()
                claim = held and lifecycle.claim(connection, held, 30, "tests/1/0")
                if claim:
                    lifecycle.succeed(connection, claim.job_id, claim.attempt, {})
            hand_off(db, settings, tenant_id)

    stop = threading.Event()
    with ThreadPoolExecutor(8) as pool:
        finishers = [pool.submit(finisher, stop) for _ in range(2)]
        list(pool.map(submitter, range(6)))
        stop.set()
        for each in finishers:
            each.result()

    with db.transaction() as session:
        holding = session.execute(
            select(func.count()).where(Job.tenant_id == tenant_id, dispatch.HOLDING)
        ).scalar_one()
        waiting = session.execute(
            select(func.count()).where(Job.tenant_id == tenant_id, *dispatch.WAITING)
        ).scalar_one()
    assert holding <= CAP
    assert waiting == 0 or holding == CAP


def test_a_success_hands_its_slot_on_in_the_statement_that_writes_it(
    db: Database, settings: Settings, user: User
) -> None:
    tenant_id = user.personal_tenant_id
    submitted, _ = submit_jobs(db, settings, tenant_id, CAP + 2)
    line = (tenant_id, "default")
    with db.autocommit() as connection:
        claim = lifecycle.claim(connection, submitted[0], 30, "tests/1/0")
        assert claim is not None
        # A copy of the write, for an attempt that is not the job's: no slot freed.
        stale = dispatch.succeed_handing_on(
            connection, submitted[0], claim.attempt + 1, {}, line, CAP
        )
        assert stale == (None, [])
        finished, handed_on = dispatch.succeed_handing_on(
            connection, submitted[0], claim.attempt, {"ok": True}, line, CAP
        )
    assert finished == lifecycle.Finished(webhooks=0)
    assert [m.job_id for m in handed_on] == [submitted[CAP]]
    assert handed_on[0].input == {"n": CAP}
    assert handed_on[0].tenant_id == tenant_id
    assert reasons(db, submitted[1:]) == [WaitingReason.BROKER] * CAP + [WaitingReason.TENANT_LIMIT]


def test_a_success_hands_on_no_slot_while_its_line_holds_more_than_a_lowered_cap(
    db: Database, settings: Settings, user: User
) -> None:
    tenant_id = user.personal_tenant_id
    set_cap(db, tenant_id, 3)
    submitted, sent = submit_jobs(db, settings, tenant_id, 5)
    assert sent == submitted[:3]
    set_cap(db, tenant_id, 1)  # three held, two waiting
    assert hand_off(db, settings, tenant_id) == []
    assert submit_one(db, settings, tenant_id, 5, alone=True)[0].line_full
    line = (tenant_id, "default")
    with db.autocommit() as connection:
        for job_id, handed in ((submitted[0], 0), (submitted[1], 0), (submitted[2], 1)):
            claim = lifecycle.claim(connection, job_id, 30, "tests/1/0")
            assert claim is not None
            finished, handed_on = dispatch.succeed_handing_on(
                connection, job_id, claim.attempt, {}, line, settings.tenant_concurrency
            )
            assert finished is not None
            # Only the last end brings the line under its cap: then one job goes.
            assert [m.job_id for m in handed_on] == submitted[3 : 3 + handed]


def test_a_cap_as_large_as_an_integer_goes_is_no_cap_to_reach(
    db: Database, settings: Settings, user: User
) -> None:
    tenant_id = user.personal_tenant_id
    set_cap(db, tenant_id, 2**31 - 1)
    submitted, sent = submit_jobs(db, settings, tenant_id, 3)
    assert sent == submitted


LONG_LINE = 3000


def rows_read(session: Session) -> int:
    """Rows of `jobs` this transaction has read so far, by index or by scanning it."""
    read = session.execute(
        text(
            "SELECT idx_tup_fetch + seq_tup_read FROM pg_stat_xact_user_tables"
            " WHERE relname = 'jobs'"
        )
    ).scalar_one()
    return int(read)


@pytest.mark.parametrize(
    "joined",
    [
        # Each job due from a moment of its own, as single submits make them.
        "now() + n * interval '1 microsecond'",
        # All due from one moment and made at it, as one batch submit makes them.
        "now()",
    ],
    ids=["one-by-one", "one-batch"],
)
def test_a_dispatch_reads_the_jobs_it_gives_slots_to_not_the_whole_line(
    db: Database, user: User, joined: str
) -> None:
    """A tenant's backlog makes its line long; each submit and each hand-off dispatches
    from it, so what one costs must not grow with the line."""
    tenant_id = user.personal_tenant_id
    with db.autocommit() as connection:
        connection.execute(
            text(
                "INSERT INTO jobs (id, tenant_id, kind, queue, status, input, max_attempts,"
                f" queued_at) SELECT gen_random_uuid(), :tenant, :kind, 'default', 'queued',"
                f" '{{}}', 1, {joined} FROM generate_series(1, :count) AS n"
            ),
            {"tenant": tenant_id, "kind": ECHO, "count": LONG_LINE},
        )
        connection.exec_driver_sql("ANALYZE jobs")  # the planner knows the line is long
        first = connection.execute(
            select(Job.id).where(Job.tenant_id == tenant_id).order_by(Job.queued_at).limit(CAP)
        ).scalars()
        first_in_line = list(first)

    with db.transaction() as session:
        before = rows_read(session)
        sent = dispatch.dispatch_line(session, tenant_id, "default", CAP)
        read_by_dispatch = rows_read(session) - before
    assert len(sent) == CAP
    if joined != "now()":  # a batch's jobs are alike in everything the line orders by
        assert [m.job_id for m in sent] == first_in_line

    with db.autocommit() as connection:
        claim = lifecycle.claim(connection, sent[0].job_id, 30, "tests/1/0")
        assert claim is not None
    with db.transaction() as session:
        before = rows_read(session)
        _, handed_on = dispatch.succeed_handing_on(
            session.connection(), claim.job_id, claim.attempt, {}, (tenant_id, "default"), CAP
        )
        read_by_hand_off = rows_read(session) - before
    assert len(handed_on) == 1

    # The slots held, the jobs taken and the one finished: a few rows, not the line.
    assert read_by_dispatch < 20
    assert read_by_hand_off < 20
