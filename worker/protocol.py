"""The job protocol around every handler: claim, heartbeat, finish.

Celery delivers at least once (`acks_late`), so this must be safe to run twice: the
claim is a compare-and-set, and every later write is fenced by the attempt number.
"""

from __future__ import annotations

import logging
import random
import uuid

from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DBAPIError

from core.jobs import lifecycle
from core.jobs.contracts import KINDS, JobKind
from core.jobs.lifecycle import Claim, JobError
from core.jobs.publishing import publish_committed
from core.settings import Settings
from worker.context import JobContext
from worker.errors import JobCancelled, LeaseLost, PermanentJobError, TransientJobError
from worker.registry import Handler
from worker.resources import runtime

log = logging.getLogger("conveyor.worker")


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
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
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


def run_job(celery: Celery, handler: Handler, job_id_text: str) -> None:
    rt = runtime()
    job_id = uuid.UUID(job_id_text)
    with rt.db.autocommit() as session:  # one statement: the claim and its event
        claim = lifecycle.claim(session, job_id, rt.settings.job_lease_seconds)
    if claim is None:
        # Duplicate delivery, a cancelled job, or one another worker holds: not ours.
        log.info("job %s not claimable; acknowledging the message", job_id)
        return
    log.info("job %s (%s) attempt %d started", job_id, claim.kind, claim.attempt)
    kind = KINDS[claim.kind]
    try:
        _run_claimed(celery, handler, kind, claim)
    finally:
        if kind.secret_fields:
            # Once finished (not when requeued for a retry), its secrets go.
            with rt.db.transaction() as session:
                lifecycle.redact_finished(session, kind, [job_id])


def _run_claimed(celery: Celery, handler: Handler, kind: JobKind, claim: Claim) -> None:
    rt = runtime()
    job_id = claim.job_id
    ctx = JobContext(rt, claim)
    try:
        with ctx.heartbeating():
            data = kind.input_model.model_validate(claim.input)
            output = handler(ctx, data)
            if isinstance(output, BaseModel):
                output = output.model_dump(mode="json")
            result = kind.output_model.model_validate(output).model_dump(mode="json")
    except LeaseLost:
        log.warning("job %s attempt %d lost its lease; stopping", job_id, claim.attempt)
        return
    except JobCancelled:
        with rt.db.transaction() as session:
            lifecycle.cancel_running(session, job_id, claim.attempt)
        log.info("job %s cancelled", job_id)
        return
    except Exception as exc:
        _handle_failure(celery, claim, exc)
        return
    with rt.db.autocommit() as session:  # one statement: the result and its event
        finished = lifecycle.succeed(session, job_id, claim.attempt, result)
    log.info("job %s %s", job_id, "succeeded" if finished else "finished but was not ours")


def _handle_failure(celery: Celery, claim: Claim, exc: Exception) -> None:
    rt = runtime()
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
        with rt.db.transaction() as session:
            requeued = lifecycle.requeue(
                session, claim.job_id, claim.attempt, reason="retry", error=error, retry_in=delay
            )
        if requeued:
            publish_committed(celery, rt.db, [(claim.job_id, KINDS[claim.kind])], delay)
        return
    with rt.db.transaction() as session:
        lifecycle.fail(session, claim.job_id, claim.attempt, error)
