"""Webhooks end to end: jobs run by a real worker, their events POSTed to a real HTTP
receiver that verifies each with the `standardwebhooks` package, and the delivery log
read over the API."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.jobs.contracts import ECHO, SLEEP
from tests.support import jobs, samples
from tests.support.factories import User
from tests.support.webhook_receiver import Delivery, Receiver
from tests.support.worker import WorkerProcess

API = "/api/v1"
ALL_EVENTS = ["job.succeeded", "job.failed", "job.cancelled"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


def create_endpoint(
    client: TestClient, user: User, receiver: Receiver, **fields: Any
) -> dict[str, Any]:
    events = fields.pop("events", ALL_EVENTS)
    return receiver.subscribe(client, user.headers, events, **fields)


def log(client: TestClient, user: User, endpoint_id: str) -> list[dict[str, Any]]:
    response = client.get(f"{API}/webhooks/{endpoint_id}/deliveries", headers=user.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def logged(client: TestClient, user: User, endpoint_id: str, count: int) -> list[dict[str, Any]]:
    """The log once it holds `count` attempts: each is written after its answer came."""
    assert _eventually(lambda: len(log(client, user, endpoint_id)) >= count, 10)
    return log(client, user, endpoint_id)


def accepted(receiver: Receiver, count: int, timeout: float = 30.0) -> list[Delivery]:
    receiver.wait_for(lambda _: len(receiver.accepted()) >= count, timeout)
    return receiver.accepted()


def test_each_end_of_a_job_arrives_signed_with_the_job_as_the_api_shows_it(
    app_client: TestClient, user: User, worker: WorkerProcess, receiver: Receiver
) -> None:
    endpoint = create_endpoint(app_client, user, receiver)
    assert endpoint["secret"].startswith("whsec_")

    echo = jobs.submit(app_client, user.headers, ECHO, {"hello": "world"})
    done = jobs.wait_for(app_client, user.headers, echo["id"])
    cut = samples.pdf(["one", "two"])
    uploaded = app_client.post(
        f"{API}/uploads",
        headers=user.headers,
        files={"file": ("cut.pdf", io.BytesIO(cut[: len(cut) // 2]), "application/pdf")},
    )
    assert uploaded.status_code == 201, uploaded.text
    failed = jobs.wait_for(app_client, user.headers, uploaded.json()["job"]["id"], timeout=60)
    sleeper = jobs.submit(app_client, user.headers, SLEEP, {"seconds": 30})
    jobs.wait_for(app_client, user.headers, sleeper["id"], {"running"})
    app_client.post(f"{API}/jobs/{sleeper['id']}/cancel", headers=user.headers)
    cancelled = jobs.wait_for(app_client, user.headers, sleeper["id"])

    arrived = {d.body["data"]["id"]: d for d in accepted(receiver, 3)}
    assert set(arrived) == {echo["id"], failed["id"], sleeper["id"]}
    for job, event in (
        (done, "job.succeeded"),
        (failed, "job.failed"),
        (cancelled, "job.cancelled"),
    ):
        delivery = arrived[job["id"]]
        assert delivery.verified_by == endpoint["secret"]
        assert delivery.message_id == "msg_" + job["id"].replace("-", "")
        assert delivery.body["type"] == event
        shown = jobs.get(app_client, user.headers, job["id"])
        extra = {"result_omitted": False, "url": f"/api/v1/jobs/{job['id']}"}
        assert delivery.body["data"] == {**shown, **extra}
    assert arrived[echo["id"]].body["data"]["result"] == {"hello": "world"}
    assert arrived[failed["id"]].body["data"]["error"]["retryable"] is False

    attempts = logged(app_client, user, endpoint["id"], 3)
    assert sorted((a["event"], a["attempt"], a["status_code"]) for a in attempts) == [
        ("job.cancelled", 1, 200),
        ("job.failed", 1, 200),
        ("job.succeeded", 1, 200),
    ]
    assert all(a["error"] is None and a["response_excerpt"] == "answered 200" for a in attempts)
    # Each delivery is a job of the tenant's, which its own end does not announce. Its
    # attempt is logged before the job's end is written.
    delivery_job = jobs.wait_for(app_client, user.headers, attempts[0]["delivery_id"])
    assert delivery_job["kind"] == "webhooks.deliver"
    assert delivery_job["status"] == "succeeded"
    assert len(receiver.deliveries) == 3


def test_a_failing_receiver_gets_the_same_message_until_it_answers_2xx(
    app_client: TestClient, user: User, worker: WorkerProcess, receiver: Receiver
) -> None:
    receiver.script = [500, 503]
    endpoint = create_endpoint(app_client, user, receiver)

    job = jobs.submit(app_client, user.headers, ECHO, {"n": 1})
    [delivered] = accepted(receiver, 1)

    assert [d.status for d in receiver.deliveries] == [500, 503, 200]
    assert {d.message_id for d in receiver.deliveries} == {delivered.message_id}
    assert delivered.body["data"]["id"] == job["id"]
    attempts = logged(app_client, user, endpoint["id"], 3)
    assert [(a["attempt"], a["status_code"]) for a in attempts] == [(3, 200), (2, 503), (1, 500)]
    assert attempts[1]["response_excerpt"] == "answered 503"
    path = f"{API}/webhooks/{endpoint['id']}/deliveries"
    first = app_client.get(path, params={"limit": 2}, headers=user.headers).json()
    rest = app_client.get(
        path, params={"limit": 2, "cursor": first["next_cursor"]}, headers=user.headers
    ).json()
    assert rest["next_cursor"] is None
    assert first["items"] + rest["items"] == attempts
    assert len({a["delivery_id"] for a in attempts}) == 1
    shown = app_client.get(f"{API}/webhooks/{endpoint['id']}", headers=user.headers).json()
    assert shown["failing_since"] is None
    assert shown["enabled"] is True


def test_a_receiver_down_for_a_while_gets_the_event_once_it_is_back(
    app_client: TestClient, user: User, worker: WorkerProcess, receiver: Receiver
) -> None:
    endpoint = create_endpoint(app_client, user, receiver)
    receiver.stop()

    job = jobs.submit(app_client, user.headers, ECHO, {"n": 2})
    jobs.wait_for(app_client, user.headers, job["id"])

    assert _eventually(lambda: len(log(app_client, user, endpoint["id"])) >= 2, 20)
    refused = log(app_client, user, endpoint["id"])
    assert all(a["status_code"] is None and "connect" in a["error"] for a in refused)
    receiver.start()

    [delivered] = accepted(receiver, 1)
    assert delivered.body["data"]["id"] == job["id"]
    assert len(receiver.deliveries) == 1


def test_410_gone_disables_the_endpoint_and_later_ends_send_nothing(
    app_client: TestClient, user: User, worker: WorkerProcess, receiver: Receiver
) -> None:
    receiver.script = [410]
    endpoint = create_endpoint(app_client, user, receiver)

    first = jobs.submit(app_client, user.headers, ECHO, {"n": 1})
    receiver.wait_for(lambda seen: len(seen) == 1)

    def disabled() -> bool:
        shown = app_client.get(f"{API}/webhooks/{endpoint['id']}", headers=user.headers).json()
        return shown["enabled"] is False and shown["disabled_reason"] == "gone"

    assert _eventually(disabled, 10)
    [attempt] = logged(app_client, user, endpoint["id"], 1)
    delivery = jobs.wait_for(app_client, user.headers, attempt["delivery_id"])
    assert delivery["status"] == "failed"
    assert delivery["error"]["type"] == "endpoint_gone"
    second = jobs.submit(app_client, user.headers, ECHO, {"n": 2})
    jobs.wait_for(app_client, user.headers, second["id"])
    listed = app_client.get(
        f"{API}/jobs", params={"kind": "webhooks.deliver"}, headers=user.headers
    ).json()["items"]
    assert len(listed) == 1
    assert len(receiver.deliveries) == 1
    assert receiver.deliveries[0].body["data"]["id"] == first["id"]


def test_after_a_rotation_both_secrets_sign_so_either_verifies(
    app_client: TestClient, user: User, worker: WorkerProcess, receiver: Receiver
) -> None:
    endpoint = create_endpoint(app_client, user, receiver)
    old = endpoint["secret"]
    rotated = app_client.post(
        f"{API}/webhooks/{endpoint['id']}/rotate-secret", headers=user.headers
    )
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new.startswith("whsec_")
    assert new != old

    receiver.secrets = [new]
    jobs.submit(app_client, user.headers, ECHO, {"n": 1})
    [first] = accepted(receiver, 1)
    assert first.verified_by == new
    receiver.secrets = [old]
    jobs.submit(app_client, user.headers, ECHO, {"n": 2})
    second = accepted(receiver, 2)[-1]
    assert second.verified_by == old
    assert len(second.signature.split(" ")) == 2


def test_kinds_filter_and_the_test_event(
    app_client: TestClient, user: User, worker: WorkerProcess, receiver: Receiver
) -> None:
    endpoint = create_endpoint(app_client, user, receiver, kinds=[SLEEP], events=["job.succeeded"])

    echo = jobs.submit(app_client, user.headers, ECHO, {"n": 1})
    sleep = jobs.submit(app_client, user.headers, SLEEP, {"seconds": 0})
    jobs.wait_for(app_client, user.headers, echo["id"])
    [delivered] = accepted(receiver, 1)
    assert delivered.body["data"]["id"] == sleep["id"]

    test = app_client.post(f"{API}/webhooks/{endpoint['id']}/test", headers=user.headers)
    assert test.status_code == 202, test.text
    tested = accepted(receiver, 2)[-1]
    assert tested.body["type"] == "webhook.test"
    assert tested.body["data"]["endpoint_id"] == endpoint["id"]
    assert tested.message_id.startswith("msg_test_")

    again = app_client.post(
        f"{API}/webhooks/{endpoint['id']}/deliveries/{test.json()['id']}/redeliver",
        headers=user.headers,
    )
    assert again.status_code == 202, again.text
    redelivered = accepted(receiver, 3)[-1]
    assert redelivered.message_id == tested.message_id
    assert len(receiver.deliveries) == 3


def test_another_tenants_jobs_never_reach_an_endpoint(
    app_client: TestClient,
    user: User,
    other_user: User,
    worker: WorkerProcess,
    receiver: Receiver,
) -> None:
    create_endpoint(app_client, user, receiver)

    theirs = jobs.submit(app_client, other_user.headers, ECHO, {"n": 1})
    jobs.wait_for(app_client, other_user.headers, theirs["id"])
    ours = jobs.submit(app_client, user.headers, ECHO, {"n": 2})
    [delivered] = accepted(receiver, 1)

    assert delivered.body["data"]["id"] == ours["id"]
    assert len(receiver.deliveries) == 1


def _eventually(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return bool(check())


def test_a_result_over_the_size_limit_is_left_out_of_the_event(
    app_client: TestClient, user: User, worker: WorkerProcess, receiver: Receiver
) -> None:
    create_endpoint(app_client, user, receiver)
    big = {"blob": "x" * 70_000}  # over WEBHOOK_MAX_RESULT_BYTES (64 KiB) as JSON

    job = jobs.submit(app_client, user.headers, ECHO, big)
    [delivered] = accepted(receiver, 1)

    data = delivered.body["data"]
    assert data["id"] == job["id"]
    assert data["result"] is None
    assert data["result_omitted"] is True
    assert app_client.get(data["url"], headers=user.headers).json()["result"] == big
