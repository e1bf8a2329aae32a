"""What a job's task message shows in the monitor: the job, never its secrets."""

from __future__ import annotations

import ast
import uuid

import pytest

from core.jobs.contracts import EMAIL_SEND, KINDS, SLEEP, JobKind
from core.jobs.messages import MAX_SHOWN_CHARS, JobMessage


@pytest.mark.parametrize("kind", list(KINDS.values()), ids=list(KINDS))
def test_a_kind_shows_only_fields_of_its_input_that_are_not_secret(kind: JobKind) -> None:
    assert set(kind.shown_fields) <= set(kind.input_model.model_fields)
    assert not set(kind.shown_fields) & set(kind.secret_fields)


def test_an_email_shows_its_subject_and_nothing_else() -> None:
    message = JobMessage.of(
        uuid.uuid4(),
        EMAIL_SEND,
        None,
        0,
        {"to": "ana@example.com", "subject": "Your code", "text": "Your code is 123456"},
    )

    shown = ast.literal_eval(message.kwargsrepr())

    assert shown == {
        "kind": EMAIL_SEND,
        "tenant": "system",
        "attempt": 1,
        "input": {"subject": "Your code"},
    }
    assert ast.literal_eval(message.argsrepr()) == [str(message.job_id)]


def test_a_long_value_is_cut_and_the_attempt_is_the_next_one() -> None:
    tenant = uuid.uuid4()
    message = JobMessage(uuid.uuid4(), KINDS[SLEEP], tenant, 2, {"seconds": "9" * 500})

    shown = ast.literal_eval(message.kwargsrepr())

    assert shown["tenant"] == str(tenant)
    assert shown["attempt"] == 3
    assert len(shown["input"]["seconds"]) == MAX_SHOWN_CHARS
