"""The job protocol around every handler: claim, heartbeat, finish.

Celery delivers at least once (`acks_late`), so this must be safe to run twice: the
claim is a compare-and-set, and every later write is fenced by the attempt number.
That also makes each write safe to retry while the database restarts: the claim and
the outcome are retried for as long as the attempt's lease may hold, so a restart
costs the job neither an attempt nor a second run of its handler.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from celery import Celery
from celery.exceptions import Reject, SoftTimeLimitExceeded
from pydantic import BaseModel, ValidationError

from core.db import is_unavailable, retrying
from core.jobs import dispatch, lifecycle, redaction
from core.jobs.contracts import KINDS, JobKind, Queue
from core.jobs.lifecycle import Claim, JobError
from core.jobs.messages import JobMessage
from core.jobs.states import JobStatus
from core.logs import log_context
from core.settings import Settings
from worker.context import JobContext
from worker.errors import JobCancelled, LeaseLost, PermanentJobError, TransientJobError
from worker.outcomes import NOT_OURS, Ended, Outcome
from worker.registry import Handler
from worker.resources import runtime

log = logging.getLogger("conveyor.worker")

T = TypeVar("T")


def classify(exc: BaseException) -> JobError:
    """Map an exception to what the job's owner sees; no stack traces, no secrets."""
    if isinstance(exc, TransientJobError):
        return JobError("transient_error", str(exc), retryable=True)
    if isinstance(exc, PermanentJobError):
        return JobError(exc.type, str(exc), retryable=False)
    if isinstance(exc, SoftTimeLimitExceeded):
        return JobError("time_limit_exceeded", "The job ran past its time limit", retryable=False)
    if isinstance(exc, ValidationError):
        return JobError(
            "invalid_output",
            "The handler produced output that does not match its contract",
            retryable=False,
        )
    if is_unavailable(exc):
        return JobError("connection_lost", "Lost the database connection", retryable=True)
    if isinstance(exc, ConnectionError | TimeoutError):
        return JobError("connection_error", type(exc).__name__, retryable=True)
    return JobError("internal_error", f"Unexpected {type(exc).__name__}", retryable=False)


def backoff_seconds(settings: Settings, attempt: int, retry_after: float | None) -> float:
    """Exponential with equal jitter; a server's Retry-After is a floor."""
    ceiling = min(
        settings.retry_backoff_max_seconds, settings.retry_backoff_base_seconds * 2 ** (attempt - 1)
    )
    delay = ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not crypto
    return float(max(delay, retry_after or 0.0))


def lease_owner_prefix(node: str, pid: int) -> str:
    """What every lease a worker's pool process holds starts with (`jobs.lease_owner`)."""
    return f"{node}/{pid}/"


def run_job(handler: Handler, job_id_text: str, node: str) -> Ended:
    rt = runtime()
    job_id = uuid.UUID(job_id_text)
    # Unique to this delivery, so a retried claim can tell its own committed claim from
    # another delivery's.
    owner = f"{lease_owner_prefix(node, os.getpid())}{secrets.token_hex(4)}"
    claim, claimed_at = _claim(job_id, owner)
    if claim is None:
        # Duplicate delivery, a cancelled job, or one another worker holds: not ours.
        log.info("job %s not claimable; acknowledging the message", job_id)
        return _turned_away(job_id)
    with log_context(tenant_id=claim.tenant_id, attempt=claim.attempt):
        log.info("job %s (%s) attempt %d started", job_id, claim.kind, claim.attempt)
        kind = KINDS[claim.kind]
        ctx = JobContext(rt, claim, claimed_at)
        try:
            ended = _run_claimed(handler, kind, ctx)
        finally:
            if kind.secret_fields:
                # Once finished (not when requeued for a retry), its secrets go.
                # Housekeeping redacts what a failed write here leaves.
                _write(ctx, "redaction", lambda: _redact(kind, job_id))
    return replace(ended, tenant_id=claim.tenant_id)


# The outcomes of an attempt that gave up its slot: the job ended or waits for a retry.
SLOT_FREED = (Outcome.SUCCEEDED, Outcome.FAILED, Outcome.CANCELLED, Outcome.RETRYING)


def hand_off(celery: Celery, ended: Ended, queue: str) -> None:
    """The slot the job held in its tenant's line is free: publish the line's next due
    job now, instead of at the reconciler's next sweep (which is what happens if this
    fails, or this process dies first). The job's end is committed before, so a submit
    racing this one sees the slot free if this does not see its job. A success hands
    its slot on in the statement that writes it, under the line's lock
    (`dispatch.succeed_handing_on`): what is left here is to publish."""
    if ended.tenant_id is None or ended.outcome not in SLOT_FREED:
        return
    rt = runtime()
    # Done already, when the write of its end did it (a success).
    lines = [] if ended.handed_on is not None else [queue]
    messages: list[JobMessage] = list(ended.handed_on or ())
    if ended.webhooks:
        # The webhooks the job's end queued: sent now, not at the reconciler's sweep.
        lines.append(Queue.WEBHOOKS.value)
    try:
        if lines:
            with rt.db.autocommit() as connection:  # each line one round trip
                for line in lines:
                    messages += dispatch.dispatch_line(
                        connection, ended.tenant_id, line, rt.settings.tenant_concurrency
                    )
    except Exception as exc:
        log.warning("hand-off in %s left to the reconciler (%s)", queue, type(exc).__name__)
    rt.publisher(celery).publish(messages)


def _turned_away(job_id: uuid.UUID) -> Ended:
    """A delivery the claim turned away ends its task as the job ended, if it ended
    cancelled or failed without a worker saying so (cancelled while queued, failed by
    the reconciler): Flower then shows the task so, not as started for ever. A copy of
    a job that succeeded, or that another attempt runs, has nothing to add."""
    try:
        with runtime().db.autocommit() as connection:
            ended = lifecycle.ended_as(connection, job_id)
    except Exception as exc:  # only what Flower shows is at stake
        log.info("job %s: how it ended not read (%s)", job_id, type(exc).__name__)
        return NOT_OURS
    if ended is None:
        return NOT_OURS
    status, error = ended
    if status is JobStatus.CANCELLED:
        return Ended(Outcome.CANCELLED)
    if status is JobStatus.FAILED and error is not None:
        return Ended(Outcome.FAILED, error=error)
    return NOT_OURS


def _claim(job_id: uuid.UUID, owner: str) -> tuple[Claim | None, float]:
    """The claim, and when (`time.monotonic()`) the statement that made it was sent:
    the lease is counted from there."""
    rt = runtime()
    lease = rt.settings.job_lease_seconds
    tries = 0
    sent_at = time.monotonic()

    def claim() -> Claim | None:
        nonlocal tries, sent_at
        tries += 1
        sent_at = time.monotonic()
        with rt.db.autocommit() as connection:  # one statement: the claim and its event
            if tries > 1:
                # The last try may have committed before its connection dropped.
                held = lifecycle.held_claim(connection, job_id, lease, owner)
                if held is not None:
                    return held
            return lifecycle.claim(connection, job_id, lease, owner)

    try:
        made = retrying(f"claim of job {job_id}", claim, deadline=time.monotonic() + lease)
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        # Still down after a lease's worth of tries: put the message back for later.
        raise Reject(f"database unavailable ({type(exc).__name__})", requeue=True) from exc
    return made, sent_at


def _write(ctx: JobContext, what: str, work: Callable[[], T]) -> T | None:
    """A write of the job's outcome, retried while the database is unavailable and the
    attempt's lease may still hold. Past that the reconciler takes the job back, so
    the write is given up (logged, None): the job runs again, and its claim fences
    this one."""
    try:
        return retrying(f"{what} of job {ctx.job_id}", work, deadline=ctx.lease_deadline())
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        log.error("job %s attempt %d: %s not written", ctx.job_id, ctx.claim.attempt, what)
        return None


def _ended(
    written: lifecycle.Finished | bool | None,
    ended: Ended,
    handed_on: list[JobMessage] | None = None,
) -> Ended:
    """`ended` if this attempt's write took, with the webhooks it queued and the jobs
    it handed the slot to; else the job is not this attempt's to report."""
    if not written:
        return NOT_OURS
    if handed_on is not None:
        ended = replace(ended, handed_on=tuple(handed_on))
    if isinstance(written, lifecycle.Finished):
        return replace(ended, webhooks=written.webhooks)
    return ended


def _redact(kind: JobKind, job_id: uuid.UUID) -> None:
    with runtime().db.transaction() as session:
        redaction.redact_finished(session, kind, [job_id])


def _run_claimed(handler: Handler, kind: JobKind, ctx: JobContext) -> Ended:
    rt = runtime()
    claim = ctx.claim
    job_id = claim.job_id
    try:
        with ctx.heartbeating():
            data = kind.input_model.model_validate(claim.input)
            output = handler(ctx, data)
            if isinstance(output, BaseModel):
                output = output.model_dump(mode="json")
            result = kind.output_model.model_validate(output).model_dump(mode="json")
    except LeaseLost:
        log.warning("job %s attempt %d lost its lease; stopping", job_id, claim.attempt)
        return NOT_OURS
    except JobCancelled:

        def cancel() -> lifecycle.Finished | None:
            with rt.db.autocommit() as connection:  # one statement
                return lifecycle.cancel_running(connection, job_id, claim.attempt)

        cancelled = _write(ctx, "cancellation", cancel)
        log.info("job %s cancelled", job_id)
        return _ended(cancelled, Ended(Outcome.CANCELLED, claim.attempt))
    except Exception as exc:
        return _handle_failure(ctx, exc)

    finished: lifecycle.Finished | bool | None = None
    handed_on: list[JobMessage] | None = None
    tries = 0

    def succeed() -> None:
        nonlocal finished, handed_on, tries
        tries += 1
        with rt.db.autocommit() as connection:  # one statement: the result and its event
            if claim.tenant_id is not None and tries == 1:
                # And the slot it frees handed on (see `hand_off`).
                line = (claim.tenant_id, kind.queue.value)
                finished, handed_on = dispatch.succeed_handing_on(
                    connection, job_id, claim.attempt, result, line, rt.settings.tenant_concurrency
                )
                return
            finished = lifecycle.succeed(connection, job_id, claim.attempt, result)
            if not finished and tries > 1:
                # The last try may have committed before its connection dropped (its
                # webhooks, if any, are then dispatched by the reconciler's sweep).
                finished = lifecycle.succeeded_by(connection, job_id, claim.attempt)

    _write(ctx, "result", succeed)
    log.info("job %s %s", job_id, "succeeded" if finished else "finished but was not ours")
    return _ended(finished, Ended(Outcome.SUCCEEDED, claim.attempt), handed_on)


def _handle_failure(ctx: JobContext, exc: Exception) -> Ended:
    rt = runtime()
    claim = ctx.claim
    error = classify(exc)
    # A stack trace only for the unexpected: handlers' own errors say what happened.
    log.warning(
        "job %s attempt %d: %s (%s)",
        claim.job_id,
        claim.attempt,
        error.type,
        type(exc).__name__,
        exc_info=error.type == "internal_error",
    )
    if error.retryable and claim.attempt < claim.max_attempts:
        retry_after = exc.retry_after if isinstance(exc, TransientJobError) else None
        delay = backoff_seconds(rt.settings, claim.attempt, retry_after)

        def requeue() -> JobStatus | None:
            # Held in PostgreSQL until `run_after`, then dispatched from its tenant's
            # line to whichever worker is free, instead of a countdown in this
            # worker's memory.
            with rt.db.autocommit() as connection:  # each statement a compare-and-set
                return lifecycle.requeue(
                    connection,
                    claim.job_id,
                    claim.attempt,
                    reason="retry",
                    error=error,
                    retry_in=delay,
                )

        requeued = _write(ctx, "retry", requeue)
        if requeued is JobStatus.CANCELLED:  # its owner had asked to cancel it
            return Ended(Outcome.CANCELLED, claim.attempt)
        return _ended(requeued is not None, Ended(Outcome.RETRYING, claim.attempt, error, delay))

    def fail() -> lifecycle.Finished | None:
        with rt.db.autocommit() as connection:  # one statement
            return lifecycle.fail(connection, claim.job_id, claim.attempt, error)

    failed = _write(ctx, "failure", fail)
    return _ended(failed, Ended(Outcome.FAILED, claim.attempt, error))
