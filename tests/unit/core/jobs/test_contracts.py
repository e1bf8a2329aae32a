from __future__ import annotations

import pytest

from core.errors import ConveyorError
from core.jobs.contracts import KINDS, Queue, longest_time_limit, public_kinds
from core.jobs.submit import validate_input
from core.settings import Settings


def test_every_kind_has_a_queue_and_a_task_name() -> None:
    for name, kind in KINDS.items():
        assert kind.name == name
        assert kind.queue in Queue
        assert kind.task_name == f"{name}.run"


def test_echo_accepts_any_object() -> None:
    _, data = validate_input("diagnostics.echo", {"a": [1, {"b": None}]})
    assert data == {"a": [1, {"b": None}]}


def test_sleep_bounds_are_enforced() -> None:
    assert validate_input("diagnostics.sleep", {"seconds": 600})[1] == {"seconds": 600}
    for bad in ({"seconds": 601}, {"seconds": -1}, {}, {"seconds": 1, "extra": True}):
        with pytest.raises(ConveyorError) as caught:
            validate_input("diagnostics.sleep", bad)
        assert caught.value.error.code == "validation_failed"
        assert all(e["field"].startswith("input") for e in caught.value.extra["errors"])


def test_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(ConveyorError) as caught:
        validate_input("diagnostics.nope", {})
    assert caught.value.error.code == "unknown_job_kind"
    assert caught.value.extra["known_kinds"] == ["diagnostics.echo", "diagnostics.sleep"]


def test_internal_kinds_are_unknown_to_clients_but_not_to_system_jobs() -> None:
    assert "email.send" not in {kind.name for kind in public_kinds()}
    with pytest.raises(ConveyorError) as caught:
        validate_input("email.send", {"to": "a@example.com", "subject": "s", "text": "t"})
    assert caught.value.error.code == "unknown_job_kind"
    kind, _ = validate_input(
        "email.send", {"to": "a@example.com", "subject": "s", "text": "t"}, allow_internal=True
    )
    assert kind.internal


def test_time_limits_cover_the_longest_sleep() -> None:
    assert KINDS["diagnostics.sleep"].time_limit_seconds > 600
    assert longest_time_limit() >= KINDS["diagnostics.sleep"].time_limit_seconds


def test_the_default_visibility_timeout_outlasts_the_longest_job() -> None:
    """Else Redis would deliver a running job's message again, to be turned away."""
    default = Settings.model_fields["broker_visibility_timeout_seconds"].default
    assert default > longest_time_limit()


# email.send: internal, and strict about what goes into a message header.

EMAIL = {"to": "ada@example.com", "subject": "Your code", "text": "12345678"}


def test_email_send_is_internal() -> None:
    assert KINDS["email.send"].internal
    assert "email.send" not in {kind.name for kind in public_kinds()}
    with pytest.raises(ConveyorError) as caught:
        validate_input("email.send", EMAIL)  # what the API does with a client's job
    assert caught.value.error.code == "unknown_job_kind"
    assert "email.send" not in caught.value.extra["known_kinds"]


def test_a_valid_email_passes() -> None:
    _, data = validate_input("email.send", EMAIL, allow_internal=True)
    assert data == EMAIL


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("subject", "Hello\r\nBcc: victim@example.com"),
        ("subject", "Hello\nBcc: victim@example.com"),
        ("subject", "Hello\u2028there"),
        ("subject", ""),
        ("subject", "x" * 201),
        ("to", "not an address"),
        ("to", "a@example.com, b@example.com"),
        ("to", "a@example.com\r\nBcc: victim@example.com"),
        ("text", "x" * 100_001),
    ],
)
def test_bad_email_fields_are_refused(field: str, value: str) -> None:
    with pytest.raises(ConveyorError) as caught:
        validate_input("email.send", {**EMAIL, field: value}, allow_internal=True)
    assert caught.value.error.code == "validation_failed"
    assert [e["field"] for e in caught.value.extra["errors"]] == [f"input.{field}"]


def test_unknown_email_fields_are_refused() -> None:
    with pytest.raises(ConveyorError) as caught:
        validate_input("email.send", {**EMAIL, "bcc": "x@example.com"}, allow_internal=True)
    assert caught.value.error.code == "validation_failed"
