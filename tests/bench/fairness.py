"""`make bench-fairness`: what one tenant's flood costs another tenant, with fair
dispatch and without it, on one stack as the Procfile runs it (api, job worker, system
worker, beat) and a local SMTP server.

Phases, in this order, each with tenants of its own:

1. solo: the quiet tenant's jobs on an idle system.
2. fifo: a noisy tenant floods the system; a moment later the quiet tenant submits its
   jobs. Both tenants' caps are off (`max_concurrency = 0`): one first-come line.
3. fair: the same, with the caps of TENANT_CONCURRENCY, as a user runs it.

During each flood, password resets are requested one at a time, each for an account
of its own, and timed until their email reaches the SMTP server. A job's wait is its
`created_at → started_at`; throughput is every job of a flood over the time from its
first submit to its last finish.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, func, select, update

from core.jobs.contracts import SLEEP
from core.jobs.states import TERMINAL, JobStatus
from core.models import Job, Tenant, User
from tests.bench.api_client import (
    HTTP_TIMEOUT_SECONDS,
    api_url,
    bench_email,
    expect,
    register,
    wait_ready,
)
from tests.bench.autovacuum import autovacuum_on
from tests.bench.failures import BenchError, failures_explained
from tests.bench.http_load import run_concurrently
from tests.bench.options import FairnessOptions
from tests.bench.output import say
from tests.bench.s3 import storage_for_api
from tests.bench.stack import (
    LoggedGroup,
    Stack,
    api_argv,
    celery_beat_argv,
    celery_worker_argv,
    check_port_free,
)
from tests.bench.stats import percentile
from tests.support.servers import free_port

LOG_DIR = Path(".conveyor") / "bench-fairness"
POLL_SECONDS = 0.25
UNLIMITED = str(10**9)
# Resets and submits come from one address and a few accounts: lift the throttles the
# bench would otherwise meet (the submit rate limit is still checked on every submit).
UNTHROTTLED_ENV = {
    "RESET_LIMIT_PER_IP": UNLIMITED,
    "RESET_LIMIT_PER_ACCOUNT": UNLIMITED,
    "RESET_EMAILS_PER_ACCOUNT": UNLIMITED,
    "REGISTER_LIMIT_PER_IP": UNLIMITED,
    "TENANT_SUBMIT_LIMIT": UNLIMITED,
    "TENANT_MAX_QUEUED_JOBS": UNLIMITED,
}


class Mailbox:
    """An SMTP server that notes when each recipient's message arrived."""

    def __init__(self) -> None:
        self.port = free_port()
        self.arrived: dict[str, float] = {}
        self._controller = Controller(
            self, hostname="127.0.0.1", port=self.port, server_hostname="smtp.bench"
        )

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        for recipient in envelope.rcpt_tos:
            self.arrived.setdefault(recipient, time.monotonic())
        return "250 OK"

    def __enter__(self) -> Mailbox:
        self._controller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._controller.stop()


@dataclass(frozen=True)
class Account:
    email: str
    tenant_id: uuid.UUID
    headers: dict[str, str]


@dataclass(frozen=True)
class Flood:
    quiet_waits: list[float]
    jobs_per_second: float
    reset_seconds: list[float]


async def new_account(client: httpx.AsyncClient, db: Engine) -> Account:
    email, password = bench_email("fair"), secrets.token_urlsafe(18)
    await register(client, email, password)
    response = expect(
        await client.post("/api/v1/auth/login", data={"username": email, "password": password}),
        200,
    )
    with db.connect() as conn:
        tenant_id = conn.execute(
            select(User.personal_tenant_id).where(User.email == email)
        ).scalar_one()
    headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
    return Account(email, tenant_id, headers)


def uncap(db: Engine, account: Account) -> None:
    with db.begin() as conn:
        conn.execute(update(Tenant).where(Tenant.id == account.tenant_id).values(max_concurrency=0))


async def submit(
    client: httpx.AsyncClient, account: Account, count: int, opts: FairnessOptions
) -> None:
    body = {"kind": SLEEP, "input": {"seconds": opts.job_seconds}}

    async def one(_: int) -> None:
        expect(await client.post("/api/v1/jobs", json=body, headers=account.headers), 202)

    await run_concurrently(count, opts.concurrency, opts.timeout, one)


async def finished(db: Engine, accounts: list[Account], group: LoggedGroup, timeout: float) -> None:
    tenants = [a.tenant_id for a in accounts]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        group.check_alive()
        with db.connect() as conn:
            rows = conn.execute(
                select(Job.status, func.count())
                .where(Job.tenant_id.in_(tenants))
                .group_by(Job.status)
            ).all()
        counts = {status: count for status, count in rows}
        if all(status in TERMINAL for status in counts):
            if set(counts) != {JobStatus.SUCCEEDED}:
                raise BenchError(f"jobs did not all succeed: {counts}")
            return
        await asyncio.sleep(POLL_SECONDS)
    raise BenchError(f"jobs not finished after {timeout:.0f} s")


def waits(db: Engine, account: Account) -> list[float]:
    with db.connect() as conn:
        rows = conn.execute(
            select(Job.created_at, Job.started_at).where(Job.tenant_id == account.tenant_id)
        ).all()
    return [(row.started_at - row.created_at).total_seconds() for row in rows if row.started_at]


def throughput(db: Engine, accounts: list[Account]) -> float:
    with db.connect() as conn:
        count, first, last = conn.execute(
            select(func.count(), func.min(Job.created_at), func.max(Job.finished_at)).where(
                Job.tenant_id.in_([a.tenant_id for a in accounts])
            )
        ).one()
    if first is None or last is None:
        raise BenchError("no finished jobs to time")
    return float(count / (last - first).total_seconds())


async def time_resets(
    client: httpx.AsyncClient, accounts: list[Account], mailbox: Mailbox, timeout: float
) -> list[float]:
    """One reset request a second, each for its own account; from each request to its
    email reaching the SMTP server."""
    sent: dict[str, float] = {}
    for account in accounts:
        sent[account.email] = time.monotonic()
        response = await client.post(
            "/api/v1/auth/password-reset/request", json={"email": account.email}
        )
        expect(response, 202)
        await asyncio.sleep(1.0)
    deadline = time.monotonic() + timeout
    while set(sent) - set(mailbox.arrived):
        if time.monotonic() > deadline:
            raise BenchError(f"{len(set(sent) - set(mailbox.arrived))} reset emails never came")
        await asyncio.sleep(0.05)
    return [mailbox.arrived[email] - at for email, at in sent.items()]


async def flood(
    client: httpx.AsyncClient,
    db: Engine,
    group: LoggedGroup,
    mailbox: Mailbox,
    opts: FairnessOptions,
    *,
    capped: bool,
) -> Flood:
    noisy, quiet = await new_account(client, db), await new_account(client, db)
    resets = [await new_account(client, db) for _ in range(opts.resets)]
    if not capped:
        uncap(db, noisy)
        uncap(db, quiet)

    async def quiet_later() -> None:
        await asyncio.sleep(opts.quiet_after)
        await submit(client, quiet, opts.quiet_jobs, opts)

    async def resets_later() -> list[float]:
        await asyncio.sleep(opts.quiet_after)
        return await time_resets(client, resets, mailbox, opts.timeout)

    steps: list[Awaitable[Any]] = [
        submit(client, noisy, opts.noisy_jobs, opts),
        quiet_later(),
        resets_later(),
    ]
    *_, reset_seconds = await asyncio.gather(*steps)
    await finished(db, [noisy, quiet], group, opts.timeout)
    return Flood(waits(db, quiet), throughput(db, [noisy, quiet]), reset_seconds)


def start(stack: Stack, opts: FairnessOptions, group: LoggedGroup) -> None:
    """The api and the Procfile's worker, system and beat processes."""
    storage_for_api(group, opts.environment, stack.secret_key)
    group.start("api", api_argv(opts.port, 1))
    worker = celery_worker_argv(
        "worker.app", "fair-worker", opts.worker_concurrency, queues="default,uploads"
    )
    group.start("worker", worker)
    system = celery_worker_argv("worker.app", "fair-system", 4, queues="system", pool="threads")
    group.start("system", system)
    group.start("beat", celery_beat_argv(stack.log_path / "celerybeat-schedule"))


def seconds(values: list[float]) -> str:
    return f"p50 {percentile(values, 0.5):.2f} s, p95 {percentile(values, 0.95):.2f} s"


async def run(
    stack: Stack, opts: FairnessOptions, group: LoggedGroup, mailbox: Mailbox
) -> tuple[list[float], Flood, Flood]:
    db = stack.servers.engine(pool_size=2)
    limits = httpx.Limits(max_connections=opts.concurrency + 2)
    try:
        async with httpx.AsyncClient(
            base_url=api_url(opts.port), limits=limits, timeout=HTTP_TIMEOUT_SECONDS
        ) as client:
            await wait_ready(client, group)
            warm = await new_account(client, db)
            say("warming up (includes worker start-up)")
            await submit(client, warm, opts.quiet_jobs, opts)
            await finished(db, [warm], group, opts.timeout)

            solo = await new_account(client, db)
            say(f"solo: the quiet tenant's {opts.quiet_jobs} jobs on an idle system")
            await submit(client, solo, opts.quiet_jobs, opts)
            await finished(db, [solo], group, opts.timeout)
            solo_waits = waits(db, solo)
            say(f"  wait {seconds(solo_waits)}")

            results = []
            for capped in (False, True):
                name = "fair" if capped else "fifo"
                say(
                    f"{name}: {opts.noisy_jobs} jobs from the noisy tenant, then "
                    f"{opts.quiet_jobs} from the quiet one, caps {'on' if capped else 'off'}"
                )
                result = await flood(client, db, group, mailbox, opts, capped=capped)
                say(
                    f"  quiet tenant's wait {seconds(result.quiet_waits)}; "
                    f"{result.jobs_per_second:.1f} jobs/s; reset email "
                    f"{seconds(result.reset_seconds)}"
                )
                results.append(result)
    finally:
        db.dispose()
    fifo, fair = results
    return solo_waits, fifo, fair


def main(opts: FairnessOptions) -> int:
    with Mailbox() as mailbox:
        env = {
            **UNTHROTTLED_ENV,
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(mailbox.port),
            "SMTP_TLS": "none",
        }
        stack = Stack.for_run(opts, LOG_DIR, env)
        with failures_explained("bench-fairness", stack.groups) as outcome:
            check_port_free(opts.port)
            say(
                f"make bench-fairness: {opts.noisy_jobs} + {opts.quiet_jobs} jobs of "
                f"{opts.job_seconds} s, worker concurrency {opts.worker_concurrency} "
                f"(prefork), environment {opts.environment}"
            )
            stack.say_where()
            with autovacuum_on(stack.servers.admin_engine()):
                stack.servers.prepare()
                with stack.group() as group:
                    start(stack, opts, group)
                    solo, fifo, fair = asyncio.run(run(stack, opts, group, mailbox))
    if outcome.code:
        return outcome.code
    p95 = percentile(solo, 0.95)
    fair_p95, fifo_p95 = percentile(fair.quiet_waits, 0.95), percentile(fifo.quiet_waits, 0.95)
    say(f"goal fair_wait_p95_s <= 2 * solo + 1 = {2 * p95 + 1:.2f}: {fair_p95:.2f}")
    say(f"goal fair_throughput_ratio >= 0.9: {fair.jobs_per_second / fifo.jobs_per_second:.3f}")
    say(
        f"reset_email_p95_s={percentile(fair.reset_seconds, 0.95):.3f} "
        f"reset_email_fifo_p95_s={percentile(fifo.reset_seconds, 0.95):.3f} (goal <= 5)"
    )
    say(
        f"fair_wait_p95_s={fair_p95:.3f} solo_wait_p95_s={p95:.3f} "
        f"fifo_wait_p95_s={fifo_p95:.3f} "
        f"fair_throughput_ratio={fair.jobs_per_second / fifo.jobs_per_second:.3f}"
    )
    return 0
