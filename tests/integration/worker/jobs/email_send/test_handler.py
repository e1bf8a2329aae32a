"""email.send through the real job protocol (claim, finish, requeue) against the real
database, delivering over TCP to a real SMTP server in this process.

The worker runtime is swapped per test for one whose settings point at that server;
retries are published to kombu's in-memory transport, which no worker consumes, so
each attempt is run here, one at a time.
"""

from __future__ import annotations

import email
import logging
import os
import uuid
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from pydantic import SecretStr

import worker.resources
from core.db import Database
from core.jobs.contracts import EMAIL_SEND
from core.jobs.publishing import PendingPublishes, mark_enqueued
from core.jobs.submit import submit
from core.models import Job, JobEvent
from core.settings import Environment, Settings, SmtpTls, get_settings
from tests.support.rows import end_retry_wait, job_state
from tests.support.smtp import SmtpServer, free_port
from tests.support.stack import Stack
from worker.protocol import run_job
from worker.registry import discover_handlers
from worker.resources import Runtime

TO = "ada@example.com"
SUBJECT = "Your Conveyor code — für Ada"
TEXT = "Your password reset code is 48151623\n\nIt works once.\n"
FROM = "Conveyor <no-reply@conveyor.example>"

RunJob = Callable[[Settings, uuid.UUID], tuple[Job, list[JobEvent]]]


@pytest.fixture
def base_settings(stack: Stack, tmp_path: Path) -> Settings:
    """Test settings with no SMTP server and an outbox of this test's own."""
    return stack.settings.model_copy(
        update={"smtp_host": None, "email_from": FROM, "data_dir": tmp_path}
    )


def smtp_settings(base: Settings, port: int, **extra: object) -> Settings:
    return base.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_tls": SmtpTls.NONE,
            "smtp_timeout_seconds": 5.0,
            **extra,
        }
    )


@pytest.fixture
def run(db: Database, monkeypatch: pytest.MonkeyPatch) -> RunJob:
    """One attempt of a job by the real runner, with a runtime built on `settings`."""
    handler = discover_handlers()["email.send"]

    def run_once(settings: Settings, job_id: uuid.UUID) -> tuple[Job, list[JobEvent]]:
        rt = Runtime(settings=settings, db=db, pid=os.getpid())
        monkeypatch.setattr(worker.resources, "_runtime", rt)
        run_job(handler, str(job_id), node="tests")
        return job_state(db, job_id)

    return run_once


def new_email_job(db: Database) -> uuid.UUID:
    with db.transaction() as session:
        submitted = submit(
            session,
            PendingPublishes(),  # published (or held back) by the test itself
            tenant_id=None,
            user_id=None,
            kind_name=EMAIL_SEND,
            raw_input={"to": TO, "subject": SUBJECT, "text": TEXT},
            settings=get_settings(),
        )
        # Recorded as published, so a running reconciler leaves it to this test.
        mark_enqueued(session, [submitted.job.id])
        return submitted.job.id


def statuses(events: list[JobEvent]) -> list[str | None]:
    return [event.data.get("status") for event in events]


def assert_is_the_email(message: EmailMessage, job_id: uuid.UUID) -> None:
    assert message["From"] == FROM
    assert message["To"] == TO
    assert message["Subject"] == SUBJECT
    assert message["Date"] is not None
    assert message["Message-ID"] == f"<{job_id}@conveyor.example>"
    assert message.get_content_type() == "text/plain"
    assert message.get_content() == TEXT


def test_delivers_over_smtp(
    db: Database, base_settings: Settings, run: RunJob, caplog: pytest.LogCaptureFixture
) -> None:
    job_id = new_email_job(db)
    caplog.set_level(logging.INFO)

    with SmtpServer() as server:
        job, events = run(smtp_settings(base_settings, server.port), job_id)
        got = server.wait_for()

    assert (job.status, job.attempts) == ("succeeded", 1), job.error
    assert job.result == {"message_id": f"<{job_id}@conveyor.example>", "transport": "smtp"}
    assert statuses(events) == ["queued", "running", "succeeded"]
    assert (got.mail_from, got.rcpt_tos) == ("no-reply@conveyor.example", [TO])
    assert_is_the_email(got.message, job_id)
    # Over SMTP the body (a reset code) stays out of the log.
    assert "48151623" not in caplog.text


def test_temporary_refusal_is_retried_with_the_same_message_id(
    db: Database, base_settings: Settings, run: RunJob
) -> None:
    job_id = new_email_job(db)

    with SmtpServer(fail_first=1) as server:
        settings = smtp_settings(base_settings, server.port)
        job, events = run(settings, job_id)

        assert (job.status, job.attempts) == ("queued", 1)
        retry = events[-1].data
        assert retry["reason"] == "retry"
        assert retry["error"]["type"] == "transient_error"
        assert retry["error"]["retryable"] is True
        assert "451" in retry["error"]["message"]
        assert server.received == []

        end_retry_wait(db, job_id)
        job, _ = run(settings, job_id)
        got = server.wait_for()

    assert (job.status, job.attempts) == ("succeeded", 2), job.error
    assert server.data_commands == 2
    assert_is_the_email(got.message, job_id)


def test_permanent_refusal_fails_without_retry(
    db: Database, base_settings: Settings, run: RunJob
) -> None:
    job_id = new_email_job(db)

    with SmtpServer(always_reject=True) as server:
        job, events = run(smtp_settings(base_settings, server.port), job_id)

    assert (job.status, job.attempts) == ("failed", 1)
    assert job.error is not None
    assert job.error["type"] == "email_rejected"
    assert job.error["retryable"] is False
    assert "550" in job.error["message"]
    assert statuses(events) == ["queued", "running", "failed"]
    assert server.data_commands == 1


def test_server_down_is_transient(db: Database, base_settings: Settings, run: RunJob) -> None:
    job_id = new_email_job(db)

    job, events = run(smtp_settings(base_settings, free_port()), job_id)

    assert (job.status, job.attempts) == ("queued", 1)
    error = events[-1].data["error"]
    assert error["type"] == "transient_error"
    assert error["retryable"] is True
    assert "ConnectionRefusedError" in error["message"]


def test_starttls_the_server_lacks_fails_without_retry(
    db: Database, base_settings: Settings, run: RunJob
) -> None:
    job_id = new_email_job(db)

    with SmtpServer() as server:
        settings = smtp_settings(base_settings, server.port, smtp_tls=SmtpTls.STARTTLS)
        job, _ = run(settings, job_id)

    assert (job.status, job.attempts) == ("failed", 1)
    assert job.error is not None
    assert (job.error["type"], job.error["retryable"]) == ("smtp_unsupported", False)
    assert "STARTTLS" in job.error["message"]
    assert server.data_commands == 0


def test_wrong_smtp_password_fails_without_leaking_it(
    db: Database, base_settings: Settings, run: RunJob, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "wrong-pass-7c1e"
    caplog.set_level(logging.DEBUG)

    with SmtpServer(login=("mailer", "right-pass")) as server:
        refused_id = new_email_job(db)
        refused, _ = run(
            smtp_settings(
                base_settings, server.port, smtp_user="mailer", smtp_password=SecretStr(wrong)
            ),
            refused_id,
        )
        accepted_id = new_email_job(db)
        accepted, _ = run(
            smtp_settings(
                base_settings,
                server.port,
                smtp_user="mailer",
                smtp_password=SecretStr("right-pass"),
            ),
            accepted_id,
        )
        got = server.wait_for()

    assert (refused.status, refused.attempts) == ("failed", 1)
    assert refused.error is not None
    assert refused.error["type"] == "smtp_auth_failed"
    assert refused.error["retryable"] is False
    assert "535" in refused.error["message"]
    assert wrong not in str(refused.error)
    assert wrong not in caplog.text
    assert accepted.status == "succeeded", accepted.error
    assert_is_the_email(got.message, accepted_id)


def test_without_smtp_in_test_the_message_goes_to_the_outbox(
    db: Database, base_settings: Settings, run: RunJob, caplog: pytest.LogCaptureFixture
) -> None:
    job_id = new_email_job(db)
    caplog.set_level(logging.INFO, logger="conveyor.worker")

    job, _ = run(base_settings, job_id)

    assert job.status == "succeeded", job.error
    assert job.result == {"message_id": f"<{job_id}@conveyor.example>", "transport": "outbox"}
    outbox = base_settings.outbox_dir
    path = outbox / f"{job_id}.eml"
    assert sorted(outbox.iterdir()) == [path]  # no temporary file left behind
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert_is_the_email(message, job_id)
    # The one place the body is logged: no mail server exists, and a local user needs
    # to read the reset code somewhere.
    lines = [r.getMessage() for r in caplog.records if r.name == "conveyor.worker"]
    [line] = [text for text in lines if TO in text]
    for part in (TO, SUBJECT, str(path), TEXT):
        assert part in line


def test_without_smtp_in_production_fails_and_logs_no_body(
    db: Database, base_settings: Settings, run: RunJob, caplog: pytest.LogCaptureFixture
) -> None:
    job_id = new_email_job(db)
    caplog.set_level(logging.DEBUG)

    job, _ = run(base_settings.model_copy(update={"environment": Environment.PRODUCTION}), job_id)

    assert (job.status, job.attempts) == ("failed", 1)
    assert job.error == {
        "type": "smtp_not_configured",
        "message": "SMTP is not configured: set SMTP_HOST",
        "retryable": False,
    }
    assert "48151623" not in caplog.text
    assert not base_settings.outbox_dir.exists()
