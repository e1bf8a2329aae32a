from __future__ import annotations

import pytest

from core.errors import ConveyorError
from core.jobs.contracts import KINDS, public_kinds
from core.jobs.submit import validate_input

GOOD = {"to": "ada@example.com", "subject": "Your code", "text": "12345678"}


def test_email_send_is_internal() -> None:
    assert KINDS["email.send"].internal
    assert "email.send" not in {kind.name for kind in public_kinds()}
    with pytest.raises(ConveyorError) as caught:
        validate_input("email.send", GOOD)  # what the API does with a client's job
    assert caught.value.error.code == "unknown_job_kind"
    assert "email.send" not in caught.value.extra["known_kinds"]


def test_a_valid_email_passes() -> None:
    _, data = validate_input("email.send", GOOD, allow_internal=True)
    assert data == GOOD


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
def test_bad_fields_are_refused(field: str, value: str) -> None:
    with pytest.raises(ConveyorError) as caught:
        validate_input("email.send", {**GOOD, field: value}, allow_internal=True)
    assert caught.value.error.code == "validation_failed"
    assert [e["field"] for e in caught.value.extra["errors"]] == [f"input.{field}"]


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ConveyorError) as caught:
        validate_input("email.send", {**GOOD, "bcc": "x@example.com"}, allow_internal=True)
    assert caught.value.error.code == "validation_failed"
