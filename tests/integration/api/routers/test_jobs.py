"""The jobs API as a client sees it: validation, idempotency, tenancy, pagination."""

from __future__ import annotations

import json
import uuid

from fastapi.testclient import TestClient

from tests.support import jobs
from tests.support.factories import User


def test_submit_answers_202_with_location(app_client: TestClient, user: User) -> None:
    response = app_client.post(
        "/api/v1/jobs", headers=user.headers, json={"kind": "diagnostics.echo", "input": {"a": 1}}
    )

    assert response.status_code == 202
    job = response.json()
    assert response.headers["location"] == f"/api/v1/jobs/{job['id']}"
    assert set(job) >= {
        "id",
        "kind",
        "status",
        "progress",
        "input",
        "result",
        "error",
        "attempts",
        "created_at",
        "started_at",
        "finished_at",
    }
    assert job["status"] == "queued"
    assert job["input"] == {"a": 1}


def test_unknown_kind_lists_known_kinds(app_client: TestClient, user: User) -> None:
    response = app_client.post(
        "/api/v1/jobs", headers=user.headers, json={"kind": "nope.nothing", "input": {}}
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "unknown_job_kind"
    assert {"diagnostics.echo", "diagnostics.sleep"} <= set(body["known_kinds"])


def test_bad_input_names_the_field(app_client: TestClient, user: User) -> None:
    response = app_client.post(
        "/api/v1/jobs",
        headers=user.headers,
        json={"kind": "diagnostics.sleep", "input": {"seconds": 601}},
    )

    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_failed"
    assert [e["field"] for e in body["errors"]] == ["input.seconds"]


def test_missing_kind_is_a_validation_problem(app_client: TestClient, user: User) -> None:
    response = app_client.post("/api/v1/jobs", headers=user.headers, json={"input": {}})

    assert response.status_code == 422
    assert response.json()["code"] == "validation_failed"
    assert response.json()["errors"][0]["field"] == "kind"


def test_idempotency_key_returns_the_same_job(app_client: TestClient, user: User) -> None:
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    first = jobs.submit(app_client, user.headers, "diagnostics.echo", {"a": 1}, **key)
    response = app_client.post(
        "/api/v1/jobs",
        headers={**user.headers, **key},
        json={"kind": "diagnostics.echo", "input": {"a": 1}},
    )

    assert response.status_code == 202
    assert response.json()["id"] == first["id"]
    assert response.headers["idempotent-replayed"] == "true"

    conflict = app_client.post(
        "/api/v1/jobs",
        headers={**user.headers, **key},
        json={"kind": "diagnostics.echo", "input": {"a": 2}},
    )
    assert conflict.status_code == 409
    assert conflict.json()["code"] == "idempotency_key_reused"


def test_idempotency_keys_are_per_tenant(
    app_client: TestClient, user: User, other_user: User
) -> None:
    key = {"Idempotency-Key": "shared-key"}
    mine = jobs.submit(app_client, user.headers, "diagnostics.echo", {}, **key)
    theirs = jobs.submit(app_client, other_user.headers, "diagnostics.echo", {}, **key)

    assert mine["id"] != theirs["id"]


def test_another_tenants_job_is_not_found(
    app_client: TestClient, user: User, other_user: User
) -> None:
    job = jobs.submit(app_client, user.headers, "diagnostics.echo", {"secret": 1})

    for method, path in [
        ("GET", f"/api/v1/jobs/{job['id']}"),
        ("GET", f"/api/v1/jobs/{job['id']}/events"),
        ("POST", f"/api/v1/jobs/{job['id']}/cancel"),
    ]:
        response = app_client.request(method, path, headers=other_user.headers)
        assert response.status_code == 404, (method, path)
        assert response.json()["code"] == "job_not_found"
    listed = app_client.get("/api/v1/jobs", headers=other_user.headers).json()["items"]
    assert job["id"] not in {j["id"] for j in listed}
    assert jobs.get(app_client, user.headers, job["id"])["input"] == {"secret": 1}


def test_unknown_tenant_header_is_not_found(
    app_client: TestClient, user: User, other_user: User
) -> None:
    me = app_client.get("/api/v1/users/me", headers=other_user.headers).json()

    response = app_client.get(
        "/api/v1/jobs", headers={**user.headers, "X-Tenant-ID": me["personal_tenant_id"]}
    )

    assert response.status_code == 404
    assert response.json()["code"] == "tenant_not_found"


def test_list_is_newest_first_with_cursor_pages(app_client: TestClient, user: User) -> None:
    ids = [
        jobs.submit(app_client, user.headers, "diagnostics.echo", {"i": i})["id"] for i in range(5)
    ]
    jobs.submit(app_client, user.headers, "diagnostics.sleep", {"seconds": 0})

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2, "kind": "diagnostics.echo"}
        if cursor:
            params["cursor"] = cursor
        page = app_client.get("/api/v1/jobs", headers=user.headers, params=params).json()
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == list(reversed(ids))


def test_list_items_leave_out_input_and_result(app_client: TestClient, user: User) -> None:
    # Forty jobs with 1 MB inputs once made one page a 52 MB answer.
    big = {"blob": "x" * 200_000}
    job = jobs.submit(app_client, user.headers, "diagnostics.echo", big)

    page = app_client.get("/api/v1/jobs", headers=user.headers, params={"limit": 5})

    assert page.status_code == 200
    assert len(page.content) < 10_000
    (item,) = [i for i in page.json()["items"] if i["id"] == job["id"]]
    assert "input" not in item
    assert "result" not in item
    assert item["kind"] == "diagnostics.echo"
    full = app_client.get(f"/api/v1/jobs/{job['id']}", headers=user.headers).json()
    assert full["input"] == big


def test_list_filters_by_status(app_client: TestClient, user: User) -> None:
    # Long enough that a worker, if one runs, cannot finish it before the cancel lands.
    job = jobs.submit(app_client, user.headers, "diagnostics.sleep", {"seconds": 60})
    app_client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=user.headers)
    jobs.wait_for(app_client, user.headers, job["id"])

    page = app_client.get(
        "/api/v1/jobs", headers=user.headers, params={"status": "cancelled"}
    ).json()

    assert [j["id"] for j in page["items"]] == [job["id"]]


def test_limit_is_capped_and_cursor_checked(app_client: TestClient, user: User) -> None:
    too_many = app_client.get("/api/v1/jobs", headers=user.headers, params={"limit": 1000})
    garbage = app_client.get("/api/v1/jobs", headers=user.headers, params={"cursor": "%%%"})

    assert too_many.status_code == 422
    assert too_many.json()["errors"][0]["field"] == "limit"
    assert garbage.status_code == 422
    assert garbage.json()["code"] == "validation_failed"


def test_job_kinds_are_listed_with_schemas(app_client: TestClient) -> None:
    kinds = {k["name"]: k for k in app_client.get("/api/v1/job-kinds").json()}

    assert kinds["diagnostics.sleep"]["input_schema"]["properties"]["seconds"]["maximum"] == 600


def test_nul_characters_are_a_validation_error(app_client: TestClient, user: User) -> None:
    in_input = app_client.post(
        "/api/v1/jobs",
        headers=user.headers,
        json={"kind": "diagnostics.echo", "input": {"a": ["ok", "x\x00"]}},
    )
    in_login = app_client.post(
        "/api/v1/auth/login", data={"username": "a\x00@example.com", "password": "whatever1"}
    )

    assert in_input.status_code == 422
    assert in_input.json()["errors"] == [
        {"field": "input.a.1", "message": "must not contain NUL characters"}
    ]
    assert in_login.status_code == 422


def test_unstorable_input_is_a_validation_error(app_client: TestClient, user: User) -> None:
    deep: dict[str, object] = {}
    node = deep
    for _ in range(100):
        node["n"] = {}
        node = node["n"]  # type: ignore[assignment]
    cases = {
        "lone surrogate": ({"a": "\ud800"}, "input.a"),
        "surrogate key": ({"\udfff": 1}, None),
        "too deep": (deep, None),
    }
    for name, (job_input, field) in cases.items():
        # Escaped JSON on the wire, as a client in another language would send it.
        body = json.dumps({"kind": "diagnostics.echo", "input": job_input})
        response = app_client.post(
            "/api/v1/jobs",
            content=body,
            headers={**user.headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 422, name
        assert response.json()["code"] == "validation_failed", name
        if field:
            assert response.json()["errors"][0]["field"] == field
