"""Signatures checked against the reference implementation (`standardwebhooks`)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from core.webhooks import signing


def test_the_reference_verifies_what_we_sign_and_we_sign_as_it_does() -> None:
    secret = signing.new_secret()
    now = int(datetime.now(UTC).timestamp())
    body = b'{"type":"job.succeeded","data":{"id":"x"}}'

    headers = signing.headers([secret], "msg_1", now, body)

    assert Webhook(secret).verify(body, headers) == {"type": "job.succeeded", "data": {"id": "x"}}
    assert headers["webhook-signature"] == Webhook(secret).sign(
        "msg_1", datetime.fromtimestamp(now, UTC), body
    )


def test_two_secrets_sign_side_by_side_and_either_verifies() -> None:
    old, new = signing.new_secret(), signing.new_secret()
    now = int(datetime.now(UTC).timestamp())
    body = b"{}"

    headers = signing.headers([new, old], "msg_2", now, body)

    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(body, headers)
    Webhook(new).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(b'{"tampered":true}', headers)


def test_secrets_are_whsec_with_32_random_bytes() -> None:
    secrets_ = {signing.new_secret() for _ in range(50)}
    assert len(secrets_) == 50
    assert all(s.startswith("whsec_") and len(s) == len("whsec_") + 44 for s in secrets_)
