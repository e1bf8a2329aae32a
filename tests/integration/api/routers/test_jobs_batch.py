"""POST /api/v1/jobs/batch: up to 1,000 jobs in one request, each judged on its own;
the accepted ones are one transaction, published after it commits, and a repeated
batch with the same keys answers with the same jobs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import func, select

from core.jobs.batch import MAX_BATCH_JOBS
from core.jobs.contracts import ECHO, SLEEP
from core.models import Job
from tests.support import jobs
from tests.support.factories import User
from tests.support.problems import assert_problem
from tests.support.reconciler import reconciler_held_off
from tests.support.stack import Stack
from tests.support.worker import WorkerProcess


def post(client: TestClient, user: User, items: list[dict[str, Any]]) -> Any:
    return client.post("/api/v1/jobs/batch", json={"jobs": items}, headers=user.headers)


def count_jobs(stack: Stack, user: User) -> int:
    with stack.db.transaction() as session:
        return session.execute(
            select(func.count()).where(Job.tenant_id == user.personal_tenant_id)
        ).scalar_one()


def test_a_batch_runs_and_an_invalid_item_is_refused_alone(
    app_client: TestClient, user: User, worker: WorkerProcess
) -> None:
    response = post(
        app_client,
        user,
        [
            {"kind": ECHO, "input": {"n": 1}},
            {"kind": "no.such.kind", "input": {}},
            {"kind": SLEEP, "input": {"seconds": "long"}},
            {"kind": ECHO, "input": {"n": 2}, "delay_seconds": 8 * 24 * 3600},
            {"input": {}},
            {"kind": ECHO, "input": {"n": 3}},
        ],
    )

    assert response.status_code == 202, response.text
    items = response.json()["items"]
    assert [sorted(item) for item in items] == [
        ["job", "replayed"],
        ["error"],
        ["error"],
        ["error"],
        ["error"],
        ["job", "replayed"],
    ]
    codes = [item["error"]["code"] for item in items if "error" in item]
    assert codes == ["unknown_job_kind"] + ["validation_failed"] * 3
    assert items[2]["error"]["errors"][0]["field"] == "input.seconds"
    assert items[3]["error"]["status"] == 422
    for item, n in ((items[0], 1), (items[5], 3)):
        assert item["job"]["status"] == "queued"
        done = jobs.wait_for(app_client, user.headers, item["job"]["id"])
        assert (done["status"], done["result"]) == ("succeeded", {"n": n})


def test_a_repeated_batch_answers_with_the_same_jobs(
    stack: Stack, app_client: TestClient, user: User
) -> None:
    items = [{"kind": ECHO, "input": {"n": n}, "idempotency_key": f"k-{n}"} for n in range(3)]
    with reconciler_held_off(stack.db):
        first = post(app_client, user, items).json()["items"]
        # The same keys again, one of them now for another body.
        items[2]["input"] = {"n": 99}
        again = post(app_client, user, items).json()["items"]

    assert [item["job"]["id"] for item in again[:2]] == [item["job"]["id"] for item in first[:2]]
    assert [item["replayed"] for item in first] == [False] * 3
    assert [item["replayed"] for item in again[:2]] == [True, True]
    assert again[2]["error"]["code"] == "idempotency_key_reused"
    assert again[2]["error"]["existing_job_id"] == first[2]["job"]["id"]
    assert count_jobs(stack, user) == 3


def test_a_batch_past_the_tenants_cap_waits_in_its_line(stack: Stack, user: User) -> None:
    from api.app import create_app

    settings = stack.settings.model_copy(
        update={"broker_url": SecretStr("memory://"), "tenant_concurrency": 3}
    )
    items = [{"kind": ECHO, "input": {"n": n}} for n in range(5)]
    with (
        reconciler_held_off(stack.db),
        TestClient(create_app(settings), raise_server_exceptions=False) as client,
    ):
        answered = post(client, user, items).json()["items"]

    reasons = [item["job"]["waiting_reason"] for item in answered]
    assert reasons == ["broker"] * 3 + ["tenant_limit"] * 2


@pytest.fixture
def small_quota_client(stack: Stack) -> Iterator[TestClient]:
    from api.app import create_app

    settings = stack.settings.model_copy(
        update={
            "broker_url": SecretStr("memory://"),
            "tenant_max_queued_jobs": 5,
            "tenant_submit_limit": 8,
        }
    )
    with (
        reconciler_held_off(stack.db),
        TestClient(create_app(settings), raise_server_exceptions=False) as client,
    ):
        yield client


def test_quotas_count_every_item_and_refuse_the_whole_batch(
    stack: Stack, small_quota_client: TestClient, user: User
) -> None:
    six = [{"kind": ECHO, "input": {"n": n}} for n in range(6)]
    accepted = post(small_quota_client, user, six[:4]).json()["items"]
    # Four queued of five: a batch of two does not fit, and is refused whole.
    assert_problem(post(small_quota_client, user, six[:2]), 429, "queued_jobs_quota_exceeded")
    assert count_jobs(stack, user) == 4
    for item in accepted:  # room in the queue again
        small_quota_client.post(f"/api/v1/jobs/{item['job']['id']}/cancel", headers=user.headers)
    # Four of the eight submits of the window are used: five more are too many.
    refused = post(small_quota_client, user, six[:5])
    body = assert_problem(refused, 429, "submit_rate_exceeded")
    assert (body["limit"], int(refused.headers["Retry-After"]) > 0) == (8, True)
    assert count_jobs(stack, user) == 4
    # A batch larger than the quota could never pass: a 422, not a wait.
    assert_problem(post(small_quota_client, user, six), 422, "validation_failed")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"jobs": []}, 422, "validation_failed"),
        ({"jobs": [{"kind": ECHO}] * (MAX_BATCH_JOBS + 1)}, 422, "validation_failed"),
        ({"jobs": {"kind": ECHO}}, 422, "validation_failed"),
        ({"jobs": [{"kind": ECHO, "input": {"pad": "x" * 2_000_000}}]}, 413, "payload_too_large"),
    ],
)
def test_a_malformed_batch_is_refused_whole(
    stack: Stack, app_client: TestClient, user: User, body: Any, status: int, code: str
) -> None:
    response = app_client.post("/api/v1/jobs/batch", json=body, headers=user.headers)
    assert_problem(response, status, code)
    assert count_jobs(stack, user) == 0
