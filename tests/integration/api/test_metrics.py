"""GET /metrics on the API's port: who may read it, and what it says about requests
and about the jobs in PostgreSQL."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from functools import partial

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import func, update

from core.jobs import totals
from core.jobs.contracts import ECHO, SLEEP
from core.models import Job
from core.settings import Environment
from tests.support.factories import User, create_job, create_tenant
from tests.support.problems import assert_problem
from tests.support.rows import add_finished_job
from tests.support.stack import Stack

TOKEN = "metrics-token-" + uuid.uuid4().hex


def samples(
    client: TestClient, **headers: str
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def production(stack: Stack, **settings: object) -> Iterator[TestClient]:
    from api.app import create_app

    production = stack.settings.model_copy(
        update={
            "environment": Environment.PRODUCTION,
            # Production names its broker: the session's, whatever it is.
            "broker_url": SecretStr(stack.settings.celery_broker_url()),
            **settings,
        }
    )
    with TestClient(create_app(production), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def production_client(stack: Stack) -> Iterator[TestClient]:
    yield from production(stack)


@pytest.fixture
def token_client(stack: Stack) -> Iterator[TestClient]:
    yield from production(stack, metrics_token=SecretStr(TOKEN))


def test_without_a_token_metrics_are_off_in_production(production_client: TestClient) -> None:
    assert_problem(production_client.get("/metrics"), 404, "not_found")


def test_metrics_switched_off_are_not_served(stack: Stack) -> None:
    for client in production(stack, metrics_token=SecretStr(TOKEN), metrics_enabled=False):
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert_problem(client.get("/metrics", headers=bearer), 404, "not_found")


def test_with_a_token_set_only_its_bearer_may_read(token_client: TestClient) -> None:
    assert_problem(token_client.get("/metrics"), 401, "not_authenticated")
    wrong = {"Authorization": "Bearer " + TOKEN[:-1] + "x"}
    assert_problem(token_client.get("/metrics", headers=wrong), 401, "not_authenticated")
    basic = {"Authorization": "Basic " + TOKEN}
    assert_problem(token_client.get("/metrics", headers=basic), 401, "not_authenticated")

    found = samples(token_client, Authorization=f"Bearer {TOKEN}")
    assert value(found, "conveyor_metrics_database_up") == 1


def test_requests_are_counted_by_route_template(app_client: TestClient, user: User) -> None:
    missing = uuid.uuid4()
    assert app_client.get(f"/api/v1/jobs/{missing}", headers=user.headers).status_code == 404
    assert app_client.get("/no/such/page").status_code == 404
    before = samples(app_client)
    for _ in range(3):
        assert (
            app_client.get(f"/api/v1/jobs/{uuid.uuid4()}", headers=user.headers).status_code == 404
        )
    app_client.request("BREW", "/healthz")

    found = samples(app_client)
    route = "/api/v1/jobs/{job_id}"
    counted = {"method": "GET", "route": route, "status": "404"}
    assert value(found, "conveyor_http_requests_total", **counted) == (
        value(before, "conveyor_http_requests_total", **counted) + 3
    )
    assert (
        value(found, "conveyor_http_requests_total", method="GET", route="unmatched", status="404")
        >= 1
    )
    assert (
        value(found, "conveyor_http_requests_total", method="other", route="/healthz", status="405")
        >= 1
    )
    timed = {"method": "GET", "route": route}
    assert value(found, "conveyor_http_request_duration_seconds_count", **timed) >= 4
    # Never a job id in a label.
    assert not any(str(missing) in dict(labels).get("route", "") for _, labels in found)


def test_the_backlog_is_read_from_postgresql(
    stack: Stack, app_client: TestClient, user: User
) -> None:
    tenant = create_tenant(stack, user, "Busy")
    queued = [create_job(stack, tenant, user, ECHO) for _ in range(30)]
    create_job(stack, tenant, user, SLEEP, {"seconds": 1})
    with stack.db.transaction() as session:
        # The oldest was sent ten minutes ago; a delayed one, not yet due, and the ones
        # in the tenant's line (however long they wait) do not count.
        session.execute(
            update(Job)
            .where(Job.id == queued[0])
            .values(
                queued_at=func.now() - timedelta(minutes=10),
                dispatched_at=func.now() - timedelta(minutes=10),
            )
        )
        session.execute(
            update(Job)
            .where(Job.id == queued[-2])
            .values(queued_at=func.now() - timedelta(hours=3))
        )
        session.execute(
            update(Job)
            .where(Job.id == queued[-1])
            .values(
                created_at=func.now() - timedelta(hours=2),
                run_after=func.now() + timedelta(hours=1),
            )
        )

    found = samples(app_client)

    assert value(found, "conveyor_tenant_jobs", tenant=str(tenant), status="queued") == 31
    assert value(found, "conveyor_tenant_jobs", tenant=str(tenant), status="running") == 0
    # The tenant's first jobs were sent, up to its cap; the rest wait in its line, the
    # delayed one for its time.
    cap = stack.settings.tenant_concurrency
    waiting = partial(value, found, "conveyor_tenant_jobs_waiting", tenant=str(tenant))
    assert waiting(reason="broker") == cap
    assert waiting(reason="scheduled") == 1
    assert waiting(reason="tenant_limit") == 31 - cap - 1
    assert value(found, "conveyor_jobs_waiting", queue="default", reason="tenant_limit") >= 20
    assert value(found, "conveyor_jobs", kind=ECHO, queue="default", status="queued") >= 30
    assert value(found, "conveyor_jobs", kind=SLEEP, queue="default", status="queued") >= 1
    oldest = value(found, "conveyor_queue_oldest_age_seconds", queue="default")
    assert 600 <= oldest < 3600, oldest
    # Every kind and queue has its series, at zero when nothing waits.
    assert ("conveyor_queue_oldest_age_seconds", frozenset({("queue", "agents")})) in found
    # All tenants' jobs add up to all jobs, whatever the number of tenants named.
    for status in ("queued", "running"):
        by_tenant = sum(
            v
            for (name, labels), v in found.items()
            if name == "conveyor_tenant_jobs" and ("status", status) in labels
        )
        by_kind = sum(
            v
            for (name, labels), v in found.items()
            if name == "conveyor_jobs" and ("status", status) in labels
        )
        assert by_tenant == by_kind
    for reason in ("scheduled", "tenant_limit", "broker"):
        by_tenant = sum(
            v
            for (name, labels), v in found.items()
            if name == "conveyor_tenant_jobs_waiting" and ("reason", reason) in labels
        )
        by_queue = sum(
            v
            for (name, labels), v in found.items()
            if name == "conveyor_jobs_waiting" and ("reason", reason) in labels
        )
        assert by_tenant == by_queue


def test_finished_jobs_retries_and_maintenance_are_reported(
    stack: Stack, app_client: TestClient
) -> None:
    kind = f"tests.metrics-{uuid.uuid4().hex[:8]}"
    finished = partial(add_finished_job, stack.db)
    add_finished_job(
        stack.db, kind, "succeeded", waited=0.2, ran=1.5, finished_ago=timedelta(), attempts=2
    )
    finished(kind, "failed", waited=3.0, ran=0.01, finished_ago=timedelta())
    with stack.db.transaction() as session:
        totals.record_run(session, "reconciler", ok=True)
        totals.count(session, totals.Counted.LEASE_TAKEOVERS, 2)

    found = samples(app_client)

    assert value(found, "conveyor_jobs_finished_total", kind=kind, outcome="succeeded") == 1
    assert value(found, "conveyor_jobs_finished_total", kind=kind, outcome="failed") == 1
    assert value(found, "conveyor_job_retries_total", kind=kind) == 1
    assert value(found, "conveyor_job_run_seconds_count", kind=kind) == 2
    assert value(found, "conveyor_job_run_seconds_bucket", kind=kind, le="0.05") == 1
    assert value(found, "conveyor_job_run_seconds_bucket", kind=kind, le="2.5") == 2
    assert value(found, "conveyor_job_run_seconds_sum", kind=kind) == 1.51
    assert value(found, "conveyor_job_queue_wait_seconds_bucket", kind=kind, le="0.25") == 1
    assert value(found, "conveyor_job_queue_wait_seconds_bucket", kind=kind, le="+Inf") == 2
    assert value(found, "conveyor_lease_takeovers_total") >= 2
    assert value(found, "conveyor_maintenance_last_run_success", task="reconciler") == 1
    last_run = value(found, "conveyor_maintenance_last_run_timestamp_seconds", task="reconciler")
    assert abs(time.time() - last_run) < 60
    # Every known kind has its series, at zero if none finished.
    assert (
        "conveyor_jobs_finished_total",
        frozenset({("kind", ECHO), ("outcome", "cancelled")}),
    ) in found
