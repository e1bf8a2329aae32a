"""Webhook endpoints over the API: who may manage and read them, what the answers
show (the secret once), and every URL webhooks must never be sent to."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.models import Role
from tests.support.factories import User, add_member, create_tenant, create_user
from tests.support.problems import assert_problem
from tests.support.stack import Stack
from tests.support.tenancy import bearer, create_key, in_tenant

API = "/api/v1"
URL = "http://127.0.0.1:9/hook"


def create(client: TestClient, headers: dict[str, str], **fields: Any) -> Any:
    body = {"url": URL, "events": ["job.succeeded"], **fields}
    return client.post(f"{API}/webhooks", json=body, headers=headers)


@pytest.fixture(scope="module")
def strict_client(stack: Stack) -> Iterator[TestClient]:
    """The API as production runs it as to targets: loopback and private refused."""
    from api.app import create_app

    settings = stack.settings.model_copy(update={"webhook_allow_private_targets": False})
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def test_create_shows_the_secret_once_and_the_rest_reads_and_changes_it(
    app_client: TestClient, user: User
) -> None:
    created = create(app_client, user.headers, description="CI hook")
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert endpoint["secret"].startswith("whsec_")
    assert endpoint["enabled"] is True
    assert endpoint["kinds"] is None
    path = f"{API}/webhooks/{endpoint['id']}"

    shown = app_client.get(path, headers=user.headers).json()
    assert "secret" not in shown
    assert shown == {k: v for k, v in endpoint.items() if k != "secret"}
    listed = app_client.get(f"{API}/webhooks", headers=user.headers).json()
    assert [e["id"] for e in listed] == [endpoint["id"]]

    changed = app_client.patch(
        path,
        json={"events": ["job.failed", "job.failed"], "kinds": ["diagnostics.echo"]},
        headers=user.headers,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["events"] == ["job.failed"]
    assert changed.json()["kinds"] == ["diagnostics.echo"]
    every_kind = app_client.patch(path, json={"kinds": None}, headers=user.headers)
    assert every_kind.json()["kinds"] is None
    off = app_client.patch(path, json={"enabled": False}, headers=user.headers).json()
    assert off["enabled"] is False
    assert off["disabled_reason"] == "manual"
    on = app_client.patch(path, json={"enabled": True}, headers=user.headers).json()
    assert on["enabled"] is True
    assert on["disabled_reason"] is None

    assert app_client.delete(path, headers=user.headers).status_code == 204
    assert_problem(app_client.get(path, headers=user.headers), 404, "webhook_not_found")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"events": []}, "events"),
        ({"events": ["job.started"]}, "events"),
        ({"kinds": ["no.such.kind"]}, "kinds"),
        ({"kinds": ["email.send"]}, "kinds"),
        ({"description": "x" * 501}, "description"),
        ({"url": "x" * 2001}, "url"),
    ],
)
def test_invalid_fields_are_a_422(
    app_client: TestClient, user: User, fields: dict[str, Any], field: str
) -> None:
    body = assert_problem(create(app_client, user.headers, **fields), 422, "validation_failed")
    assert any(field in e["field"] for e in body["errors"])  # type: ignore[attr-defined]


def test_members_read_admins_manage_and_keys_need_their_scope(
    app_client: TestClient, stack: Stack, user: User
) -> None:
    team = create_tenant(stack, user, "Hooks team")
    owner = in_tenant(user.headers, team)
    endpoint = create(app_client, owner).json()
    path = f"{API}/webhooks/{endpoint['id']}"
    member, admin = create_user(stack), create_user(stack)
    add_member(stack, team, member)
    add_member(stack, team, admin, Role.ADMIN)
    as_member, as_admin = in_tenant(member.headers, team), in_tenant(admin.headers, team)

    assert app_client.get(path, headers=as_member).status_code == 200
    assert app_client.get(f"{path}/deliveries", headers=as_member).status_code == 200
    managing = (("PATCH", ""), ("DELETE", ""), ("POST", "/rotate-secret"), ("POST", "/test"))
    for method, suffix in managing:
        json = {"description": "x"} if method == "PATCH" else None
        answer = app_client.request(method, f"{path}{suffix}", headers=as_member, json=json)
        assert_problem(answer, 403, "forbidden")
    assert_problem(create(app_client, as_member), 403, "forbidden")
    assert create(app_client, as_admin).status_code == 201

    def key(*scopes: str) -> dict[str, str]:
        return bearer(create_key(app_client, owner, team, list(scopes))["secret"])

    reader = key("webhooks:read")
    jobs_only = key("jobs:read")
    # Events carry every job's result: a key that manages endpoints must read them too.
    blind_writer = key("webhooks:write")
    writer = key("webhooks:write", "jobs:read", "uploads:read")
    assert app_client.get(path, headers=reader).status_code == 200
    assert_problem(create(app_client, reader), 403, "insufficient_scope")
    assert_problem(app_client.get(path, headers=jobs_only), 403, "insufficient_scope")
    body = assert_problem(create(app_client, blind_writer), 403, "insufficient_scope")
    assert body["required_scope"] == "jobs:read"
    assert create(app_client, writer).status_code == 201
    rotated = app_client.post(f"{path}/rotate-secret", headers=writer)
    assert rotated.status_code == 200, rotated.text


def test_another_tenants_endpoint_is_not_found(
    app_client: TestClient, user: User, other_user: User
) -> None:
    endpoint = create(app_client, user.headers).json()
    path = f"{API}/webhooks/{endpoint['id']}"
    for method, suffix in (
        ("GET", ""),
        ("PATCH", ""),
        ("DELETE", ""),
        ("POST", "/rotate-secret"),
        ("POST", "/test"),
        ("GET", "/deliveries"),
        ("POST", f"/deliveries/{uuid.uuid4()}/redeliver"),
    ):
        json = {"description": "theirs"} if method == "PATCH" else None
        answer = app_client.request(
            method, f"{path}{suffix}", headers=other_user.headers, json=json
        )
        assert_problem(answer, 404, "webhook_not_found")
    assert app_client.get(f"{API}/webhooks", headers=other_user.headers).json() == []
    assert app_client.get(path, headers=user.headers).json()["description"] == ""


def test_a_delivery_of_another_endpoint_cannot_be_redelivered(
    app_client: TestClient, user: User
) -> None:
    first = create(app_client, user.headers).json()
    second = create(app_client, user.headers).json()
    test = app_client.post(f"{API}/webhooks/{first['id']}/test", headers=user.headers)
    assert test.status_code == 202, test.text
    answer = app_client.post(
        f"{API}/webhooks/{second['id']}/deliveries/{test.json()['id']}/redeliver",
        headers=user.headers,
    )
    assert_problem(answer, 404, "webhook_delivery_not_found")


def test_a_tenant_has_at_most_its_limit_of_endpoints(stack: Stack, user: User) -> None:
    from api.app import create_app

    settings = stack.settings.model_copy(update={"webhook_max_endpoints": 2})
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert create(client, user.headers).status_code == 201
        assert create(client, user.headers).status_code == 201
        body = assert_problem(create(client, user.headers), 409, "webhook_limit_reached")
    assert body["limit"] == 2


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://10.0.0.5/hook",
        "http://172.16.3.4/hook",
        "http://192.168.1.10/hook",
        "http://100.64.0.1/hook",
        "http://[fd00::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/hook",
        "http://[fd00:ec2::254]/hook",
        "http://224.0.0.1/hook",
    ],
)
def test_loopback_private_link_local_and_metadata_targets_are_refused(
    strict_client: TestClient, user: User, url: str
) -> None:
    body = assert_problem(create(strict_client, user.headers, url=url), 422, "webhook_url_refused")
    assert "resolves to" in str(body["detail"])


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/hook",
        "http://[fd00:ec2::254]/hook",
        "http://100.100.100.200/hook",
    ],
)
def test_link_local_and_metadata_targets_are_refused_even_where_private_ones_are_allowed(
    app_client: TestClient, user: User, url: str
) -> None:
    assert_problem(create(app_client, user.headers, url=url), 422, "webhook_url_refused")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "https://user:pass@example.com/hook",
        "https://example.com/hook#part",
        "https:///hook",
        "https://example.com:99999/hook",
        "https://no-such-host.invalid/hook",
    ],
)
def test_urls_that_are_not_webhook_targets_are_refused(
    app_client: TestClient, user: User, url: str
) -> None:
    assert_problem(create(app_client, user.headers, url=url), 422, "webhook_url_refused")


def test_a_refused_url_is_refused_on_update_too(
    strict_client: TestClient, app_client: TestClient, user: User
) -> None:
    endpoint = create(app_client, user.headers).json()
    answer = strict_client.patch(
        f"{API}/webhooks/{endpoint['id']}",
        json={"url": "http://169.254.169.254/"},
        headers=user.headers,
    )
    assert_problem(answer, 422, "webhook_url_refused")
    shown = app_client.get(f"{API}/webhooks/{endpoint['id']}", headers=user.headers)
    assert shown.json()["url"] == URL
