"""A tenant's quotas: a cap on its queued jobs (TENANT_MAX_QUEUED_JOBS) and a submit
rate limit (TENANT_SUBMIT_LIMIT per TENANT_SUBMIT_WINDOW_SECONDS). A refusal is a 429
with a stable code and Retry-After, and stores nothing. The API publishes to an
in-memory broker no worker reads, so the accepted jobs stay queued."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import func, select

from core.db import Database
from core.jobs.contracts import ECHO
from core.models import Job, Upload
from tests.support.factories import User
from tests.support.problems import assert_problem
from tests.support.reconciler import reconciler_held_off
from tests.support.stack import Stack


def client_with(stack: Stack, **limits: Any) -> Iterator[TestClient]:
    from api.app import create_app

    settings = stack.settings.model_copy(update={"broker_url": SecretStr("memory://"), **limits})
    with (
        reconciler_held_off(stack.db),
        TestClient(create_app(settings), raise_server_exceptions=False) as client,
    ):
        yield client


@pytest.fixture
def quota_client(stack: Stack) -> Iterator[TestClient]:
    yield from client_with(stack, tenant_max_queued_jobs=3, tenant_concurrency=1)


@pytest.fixture
def rate_client(stack: Stack) -> Iterator[TestClient]:
    yield from client_with(stack, tenant_submit_limit=2, tenant_submit_window_seconds=60)


def post_job(client: TestClient, user: User, n: int, **headers: str) -> Any:
    return client.post(
        "/api/v1/jobs", json={"kind": ECHO, "input": {"n": n}}, headers={**user.headers, **headers}
    )


def count(db: Database, model: type[Job] | type[Upload], user: User) -> int:
    with db.transaction() as session:
        return session.execute(
            select(func.count())
            .select_from(model)
            .where(model.tenant_id == user.personal_tenant_id)
        ).scalar_one()


def test_a_tenant_at_its_queued_jobs_quota_is_refused_and_nothing_is_stored(
    stack: Stack, quota_client: TestClient, user: User, other_user: User
) -> None:
    accepted = [post_job(quota_client, user, n) for n in range(3)]
    assert [r.status_code for r in accepted] == [202] * 3
    # Three queued: one sent, two waiting in line; the quota counts them all.
    assert [r.json()["waiting_reason"] for r in accepted] == ["broker"] + ["tenant_limit"] * 2

    refused = post_job(quota_client, user, 3)

    body = assert_problem(refused, 429, "queued_jobs_quota_exceeded")
    assert refused.headers["Retry-After"] == "10"
    assert (body["quota"], body["queued"]) == (3, 3)
    assert count(stack.db, Job, user) == 3
    upload = quota_client.post(
        "/api/v1/uploads", files={"file": ("a.txt", b"text\n", "text/plain")}, headers=user.headers
    )
    assert_problem(upload, 429, "queued_jobs_quota_exceeded")
    assert count(stack.db, Upload, user) == 0

    # Another tenant has a quota of its own; and a job that ends makes room.
    assert post_job(quota_client, other_user, 0).status_code == 202
    cancel = quota_client.post(
        f"/api/v1/jobs/{accepted[2].json()['id']}/cancel", headers=user.headers
    )
    assert cancel.status_code == 200
    assert post_job(quota_client, user, 4).status_code == 202


def test_a_tenant_past_its_submit_rate_is_refused_until_the_window_moves(
    stack: Stack, rate_client: TestClient, user: User, other_user: User
) -> None:
    first = post_job(rate_client, user, 0, **{"Idempotency-Key": "first"})
    assert first.status_code == 202
    assert post_job(rate_client, user, 1).status_code == 202

    refused = post_job(rate_client, user, 2)

    body = assert_problem(refused, 429, "submit_rate_exceeded")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert (body["limit"], body["window_seconds"]) == (2, 60)
    assert count(stack.db, Job, user) == 2
    # A repeated request is answered with its job, not counted again.
    replay = post_job(rate_client, user, 0, **{"Idempotency-Key": "first"})
    assert replay.status_code == 202
    assert replay.json()["id"] == first.json()["id"]
    # The limit is the tenant's: another one submits as before.
    assert post_job(rate_client, other_user, 0).status_code == 202
