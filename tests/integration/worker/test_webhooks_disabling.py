"""An endpoint that keeps failing is disabled, and whoever created it is emailed; here
"keeps failing" is one second (WEBHOOK_DISABLE_AFTER_SECONDS) instead of five days.
Its own database and broker, so only its own worker (with that setting) runs it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.jobs.contracts import ECHO
from tests.support import jobs
from tests.support.factories import create_user
from tests.support.stack import Stack, on_own_broker
from tests.support.webhook_receiver import Receiver
from tests.support.worker import WorkerProcess

API = "/api/v1"


@pytest.fixture
def own(stack: Stack, tmp_path: Path) -> Iterator[Stack]:
    with on_own_broker(stack, tmp_path, {"WEBHOOK_DISABLE_AFTER_SECONDS": "1"}) as isolated:
        yield isolated


def test_an_endpoint_failing_for_long_is_disabled_and_its_creator_told(
    own: Stack, tmp_path: Path
) -> None:
    from api.app import create_app

    receiver = Receiver(script=[500] * 20).start()
    worker = WorkerProcess(own.env, tmp_path, name="hook-disable")
    try:
        with TestClient(create_app(own.settings), raise_server_exceptions=False) as client:
            user = create_user(own)
            created = receiver.subscribe(client, user.headers, ["job.succeeded"])
            path = f"{API}/webhooks/{created['id']}"
            jobs.submit(client, user.headers, ECHO, {"n": 1})

            mail = own.smtp.wait_for(lambda item: user.email in item.rcpt_tos, timeout=60)

            assert mail.message["Subject"] == "A Conveyor webhook endpoint was disabled"
            assert created["id"] in mail.message.get_content()
            shown = client.get(path, headers=user.headers).json()
            assert shown["enabled"] is False
            assert shown["disabled_reason"] == "failing"
            assert shown["failing_since"] is not None
            attempts = client.get(f"{path}/deliveries", headers=user.headers).json()["items"]
            assert attempts
            assert all(a["status_code"] == 500 for a in attempts)
            delivery = jobs.wait_for(client, user.headers, attempts[0]["delivery_id"])
            assert delivery["status"] == "failed"
            assert delivery["error"]["type"] == "endpoint_disabled"
            # Disabled: a job ending now queues no delivery for it.
            later = jobs.submit(client, user.headers, ECHO, {"n": 2})
            jobs.wait_for(client, user.headers, later["id"])
            listed = client.get(
                f"{API}/jobs", params={"kind": "webhooks.deliver"}, headers=user.headers
            ).json()["items"]
            assert len(listed) == 1

            enabled = client.patch(path, json={"enabled": True}, headers=user.headers).json()
            assert enabled["enabled"] is True
            assert enabled["failing_since"] is None
    finally:
        worker.stop()
        receiver.stop()
