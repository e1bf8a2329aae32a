"""A worker killed in the middle of a delivery: the event still arrives, by another
worker, once the dead one's lease has expired, with the same `webhook-id`. A test with
a broker and a database of its own, so only its own workers run its deliveries."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.jobs.contracts import ECHO
from tests.support import jobs
from tests.support.factories import create_user
from tests.support.stack import Stack, on_own_broker
from tests.support.webhook_receiver import Receiver
from tests.support.worker import WorkerProcess

API = "/api/v1"
# Far longer than the test: the first request is still unanswered when its worker dies.
HANG_SECONDS = 120.0


@pytest.fixture
def own(stack: Stack, tmp_path: Path) -> Iterator[Stack]:
    with on_own_broker(stack, tmp_path) as isolated:
        yield isolated


def test_a_worker_killed_mid_delivery_leaves_the_event_to_another(
    own: Stack, tmp_path: Path
) -> None:
    from api.app import create_app

    receiver = Receiver(delays=[HANG_SECONDS]).start()
    first = WorkerProcess(own.env, _dir(tmp_path, "first"), name="hook-first")
    second: WorkerProcess | None = None
    try:
        with TestClient(create_app(own.settings), raise_server_exceptions=False) as client:
            user = create_user(own)
            created = receiver.subscribe(client, user.headers, ["job.succeeded"])
            job = jobs.submit(client, user.headers, ECHO, {"n": 1})
            _wait(lambda: receiver.arrivals == 1, 30, "the first request")

            first.kill()
            second = WorkerProcess(
                own.env, _dir(tmp_path, "second"), name="hook-second", beat=False
            )
            [delivered] = receiver.wait_for(lambda seen: len(seen) == 1, timeout=60)

            assert delivered.verified_by == created["secret"]
            assert delivered.message_id == "msg_" + job["id"].replace("-", "")
            assert receiver.arrivals == 2
            path = f"{API}/webhooks/{created['id']}/deliveries"

            def log() -> list[dict[str, Any]]:
                items: list[dict[str, Any]] = client.get(path, headers=user.headers).json()["items"]
                return items

            # Each attempt is logged after its answer came.
            _wait(lambda: len(log()) == 1, 10, "the attempt in the log")
            [attempt] = log()
            assert (attempt["attempt"], attempt["status_code"]) == (2, 200)
            delivery = jobs.wait_for(client, user.headers, attempt["delivery_id"])
            assert delivery["status"] == "succeeded"
            assert delivery["attempts"] == 2
            reasons = [
                e["data"].get("reason")
                for e in jobs.events(client, user.headers, delivery["id"])
                if e["type"] == "status"
            ]
            assert "lease_expired" in reasons
    finally:
        for worker in (first, second):
            if worker is not None:
                worker.stop()
        receiver.stop()


def _dir(base: Path, name: str) -> Path:
    path = base / name
    path.mkdir()
    return path


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {timeout} s")
        time.sleep(0.05)
