"""API keys as a client sees them: made by a tenant's admins, shown once, limited to
their scopes and their tenant, and dead the moment they are revoked."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.models import Role
from tests.support import jobs
from tests.support.factories import User, add_member, create_tenant, create_user
from tests.support.problems import assert_problem
from tests.support.stack import Stack
from tests.support.tenancy import (
    API,
    bearer,
    create_key,
    in_tenant,
    job_ids,
    list_keys,
)

SECRET = re.compile(r"cvk_[A-Za-z0-9_-]{43}")
ECHO = {"kind": "diagnostics.echo", "input": {"from": "key"}}


def _key_in(keys: list[Any], key_id: str) -> dict[str, Any]:
    [key] = [k for k in keys if k["id"] == key_id]
    found: dict[str, Any] = key
    return found


def test_the_secret_is_shown_once(app_client: TestClient, user: User) -> None:
    tenant = str(user.personal_tenant_id)
    response = app_client.post(
        f"{API}/api-keys",
        headers=user.headers,
        json={"name": "deploy", "scopes": ["jobs:write", "jobs:read", "jobs:read"]},
    )

    assert response.status_code == 201, response.text
    created = response.json()
    secret = created["secret"]
    assert SECRET.fullmatch(secret), secret
    assert created["prefix"] == secret[:12]
    assert created["tenant_id"] == tenant
    assert created["name"] == "deploy"
    assert sorted(created["scopes"]) == ["jobs:read", "jobs:write"]
    assert created["created_at"]
    assert created["last_used_at"] is None
    assert created["revoked_at"] is None

    listing = app_client.get(f"{API}/api-keys", headers=user.headers)
    assert listing.status_code == 200
    listed = _key_in(listing.json(), created["id"])
    assert listed == {k: v for k, v in created.items() if k != "secret"}
    assert "secret" not in listed
    assert secret not in listing.text
    assert secret[12:] not in listing.text
    assert secret[12:] not in app_client.get(f"{API}/users/me", headers=user.headers).text
    another = create_key(app_client, user.headers, None)
    assert another["secret"] != secret
    assert another["prefix"] != created["prefix"]


def test_a_key_submits_and_reads_jobs(app_client: TestClient, user: User) -> None:
    key = bearer(create_key(app_client, user.headers, None, ["jobs:read", "jobs:write"])["secret"])

    job = jobs.submit(app_client, key, "diagnostics.echo", {"n": 1})

    assert jobs.get(app_client, key, job["id"])["input"] == {"n": 1}
    assert jobs.events(app_client, key, job["id"])[0]["type"] == "status"
    assert job["id"] in job_ids(app_client, key)
    # The key acts in its tenant: the user sees the job too.
    assert jobs.get(app_client, user.headers, job["id"])["id"] == job["id"]
    cancelled = app_client.post(f"{API}/jobs/{job['id']}/cancel", headers=key)
    assert cancelled.status_code in (200, 202, 409), cancelled.text


def test_scopes_are_enforced(app_client: TestClient, user: User) -> None:
    job = jobs.submit(app_client, user.headers, "diagnostics.echo", {})
    reader = bearer(create_key(app_client, user.headers, None, ["jobs:read"])["secret"])
    writer = bearer(create_key(app_client, user.headers, None, ["jobs:write"])["secret"])
    other = bearer(
        create_key(app_client, user.headers, None, ["uploads:read", "agents:run"])["secret"]
    )

    assert app_client.get(f"{API}/jobs", headers=reader).status_code == 200
    assert app_client.get(f"{API}/jobs/{job['id']}", headers=reader).status_code == 200
    assert app_client.get(f"{API}/jobs/{job['id']}/events", headers=reader).status_code == 200
    assert jobs.submit(app_client, writer, "diagnostics.echo", {})["status"] == "queued"

    before = job_ids(app_client, user.headers)
    for headers, method, path, needed in [
        (reader, "POST", "/jobs", "jobs:write"),
        (reader, "POST", f"/jobs/{job['id']}/cancel", "jobs:write"),
        (writer, "GET", "/jobs", "jobs:read"),
        (writer, "GET", f"/jobs/{job['id']}", "jobs:read"),
        (writer, "GET", f"/jobs/{job['id']}/events", "jobs:read"),
        (other, "GET", "/jobs", "jobs:read"),
        (other, "POST", "/jobs", "jobs:write"),
    ]:
        response = app_client.request(method, API + path, headers=headers, json=ECHO)
        body = assert_problem(response, 403, "insufficient_scope")
        assert body["required_scope"] == needed, (method, path)
    assert job_ids(app_client, user.headers) == before
    assert jobs.get(app_client, user.headers, job["id"])["cancel_requested_at"] is None


def test_last_use_is_recorded(app_client: TestClient, user: User) -> None:
    created = create_key(app_client, user.headers, None)
    assert _key_in(list_keys(app_client, user.headers, None), created["id"])["last_used_at"] is None

    assert app_client.get(f"{API}/jobs", headers=bearer(created["secret"])).status_code == 200

    first = _key_in(list_keys(app_client, user.headers, None), created["id"])["last_used_at"]
    assert first is not None
    assert datetime.fromisoformat(first) >= datetime.fromisoformat(created["created_at"])
    # At most once a minute: a second use straight away leaves it as it was.
    assert app_client.get(f"{API}/jobs", headers=bearer(created["secret"])).status_code == 200
    again = _key_in(list_keys(app_client, user.headers, None), created["id"])["last_used_at"]
    assert again == first


def test_a_revoked_key_fails_at_once(app_client: TestClient, user: User) -> None:
    created = create_key(app_client, user.headers, None)
    kept = create_key(app_client, user.headers, None)
    key = bearer(created["secret"])
    assert app_client.get(f"{API}/jobs", headers=key).status_code == 200

    revoked = app_client.delete(f"{API}/api-keys/{created['id']}", headers=user.headers)

    assert revoked.status_code == 204, revoked.text
    for method, path in [("GET", "/jobs"), ("POST", "/jobs")]:
        response = app_client.request(method, API + path, headers=key, json=ECHO)
        assert_problem(response, 401, "invalid_token")
        assert response.headers["www-authenticate"] == "Bearer"
    listed = list_keys(app_client, user.headers, None)
    assert _key_in(listed, created["id"])["revoked_at"] is not None
    assert _key_in(listed, kept["id"])["revoked_at"] is None
    assert app_client.get(f"{API}/jobs", headers=bearer(kept["secret"])).status_code == 200
    # Revoking twice is not an error; a key that never was is a 404.
    again = app_client.delete(f"{API}/api-keys/{created['id']}", headers=user.headers)
    assert again.status_code == 204
    unknown = app_client.delete(
        f"{API}/api-keys/00000000-0000-4000-8000-000000000000", headers=user.headers
    )
    assert_problem(unknown, 404, "api_key_not_found")
    assert_problem(
        app_client.get(f"{API}/jobs", headers=bearer("cvk_" + "x" * 43)), 401, "invalid_token"
    )


def test_a_key_is_bound_to_its_tenant(app_client: TestClient, stack: Stack, user: User) -> None:
    team = str(create_tenant(stack, user))
    personal = str(user.personal_tenant_id)
    key = bearer(create_key(app_client, user.headers, team)["secret"])

    assert app_client.get(f"{API}/jobs", headers=in_tenant(key, team)).status_code == 200
    for tenant in (personal, "00000000-0000-4000-8000-000000000000"):
        response = app_client.get(f"{API}/jobs", headers=in_tenant(key, tenant))
        assert_problem(response, 404, "tenant_not_found")


@pytest.fixture
def team(stack: Stack, user: User) -> str:
    return str(create_tenant(stack, user, "Key team"))


def _join(stack: Stack, tenant: str, role: Role) -> User:
    """A new user, a member of the tenant."""
    person = create_user(stack)
    add_member(stack, uuid.UUID(tenant), person, role)
    return person


def test_members_cannot_manage_keys_and_admins_can(
    app_client: TestClient, user: User, team: str, stack: Stack
) -> None:
    owners_key = create_key(app_client, user.headers, team, name="owner's")
    member = _join(stack, team, Role.MEMBER)
    admin = _join(stack, team, Role.ADMIN)
    as_member = in_tenant(member.headers, team)
    as_admin = in_tenant(admin.headers, team)
    # A member works in the tenant...
    assert app_client.get(f"{API}/jobs", headers=as_member).status_code == 200

    # ...but cannot touch its keys.
    for method, path in [
        ("POST", "/api-keys"),
        ("GET", "/api-keys"),
        ("DELETE", f"/api-keys/{owners_key['id']}"),
    ]:
        response = app_client.request(
            method, API + path, headers=as_member, json={"name": "mine", "scopes": ["jobs:read"]}
        )
        body = assert_problem(response, 403, "forbidden")
        assert body["required_role"] == "admin"
    assert len(list_keys(app_client, user.headers, team)) == 1
    assert app_client.get(f"{API}/jobs", headers=bearer(owners_key["secret"])).status_code == 200

    admins_key = create_key(app_client, admin.headers, team, name="admin's")
    assert admins_key["tenant_id"] == team
    assert {k["id"] for k in list_keys(app_client, admin.headers, team)} == {
        owners_key["id"],
        admins_key["id"],
    }
    revoked = app_client.delete(f"{API}/api-keys/{owners_key['id']}", headers=as_admin)
    assert revoked.status_code == 204
    response = app_client.get(f"{API}/jobs", headers=bearer(owners_key["secret"]))
    assert_problem(response, 401, "invalid_token")

    promoted = app_client.patch(
        f"{API}/tenants/{team}/members/{member.id}",
        headers=user.headers,
        json={"role": "admin"},
    )
    assert promoted.status_code == 200, promoted.text
    assert app_client.get(f"{API}/api-keys", headers=as_member).status_code == 200


def test_a_key_cannot_manage_keys_tenants_or_accounts(
    app_client: TestClient, user: User, team: str
) -> None:
    all_scopes = ["jobs:read", "jobs:write", "uploads:read", "uploads:write", "agents:run"]
    created = create_key(app_client, user.headers, team, all_scopes)
    key = bearer(created["secret"])
    other = create_key(app_client, user.headers, team)

    for method, path, body in [
        ("GET", "/api-keys", None),
        ("POST", "/api-keys", {"name": "child", "scopes": ["jobs:read"]}),
        ("DELETE", f"/api-keys/{other['id']}", None),
        ("DELETE", f"/api-keys/{created['id']}", None),
        ("GET", "/tenants", None),
        ("POST", "/tenants", {"name": "by key"}),
        ("GET", f"/tenants/{team}", None),
        ("PATCH", f"/tenants/{team}", {"name": "renamed by key"}),
        ("GET", f"/tenants/{team}/members", None),
        ("POST", f"/tenants/{team}/members", {"email": "friend@example.com"}),
        ("GET", "/users/me", None),
    ]:
        for headers in (key, in_tenant(key, team)):
            response = app_client.request(method, API + path, headers=headers, json=body)
            assert_problem(response, 403, "user_login_required")

    keys = list_keys(app_client, user.headers, team)
    assert {k["id"] for k in keys} == {created["id"], other["id"]}
    assert all(k["revoked_at"] is None for k in keys)
    tenant = app_client.get(f"{API}/tenants/{team}", headers=user.headers).json()
    assert tenant["name"] == "Key team"
    members = app_client.get(f"{API}/tenants/{team}/members", headers=user.headers).json()
    assert [m["email"] for m in members] == [user.email]
    # The same key does what its scopes allow.
    assert app_client.get(f"{API}/jobs", headers=key).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "ci", "scopes": []}, "scopes"),
        ({"name": "ci", "scopes": ["jobs:delete"]}, "scopes.0"),
        ({"name": "ci", "scopes": ["jobs:read", "admin"]}, "scopes.1"),
        ({"name": "ci", "scopes": "jobs:read"}, "scopes"),
        ({"name": "", "scopes": ["jobs:read"]}, "name"),
        ({"name": "   ", "scopes": ["jobs:read"]}, "name"),
        ({"name": "x" * 201, "scopes": ["jobs:read"]}, "name"),
        ({"name": "a\x00b", "scopes": ["jobs:read"]}, "name"),
        ({"scopes": ["jobs:read"]}, "name"),
        ({"name": "ci"}, "scopes"),
    ],
    ids=[
        "empty scopes",
        "unknown scope",
        "one unknown scope",
        "scopes not a list",
        "empty name",
        "blank name",
        "long name",
        "NUL in name",
        "no name",
        "no scopes",
    ],
)
def test_invalid_bodies_are_validation_problems(
    app_client: TestClient, user: User, body: dict[str, Any], field: str
) -> None:
    response = app_client.post(f"{API}/api-keys", headers=user.headers, json=body)

    problem = assert_problem(response, 422, "validation_failed")
    errors = problem["errors"]
    assert isinstance(errors, list)
    assert field in {e["field"] for e in errors}
    assert list_keys(app_client, user.headers, None) == []


def test_a_removed_members_keys_are_revoked(
    app_client: TestClient, user: User, team: str, stack: Stack
) -> None:
    admin = _join(stack, team, Role.ADMIN)
    leaver = _join(stack, team, Role.ADMIN)
    removed_key = create_key(app_client, admin.headers, team, name="admin's")
    leavers_key = create_key(app_client, leaver.headers, team, name="leaver's")
    owners_key = create_key(app_client, user.headers, team, name="owner's")
    admins_personal_key = create_key(app_client, admin.headers, None, name="admin's own")
    for created in (removed_key, leavers_key, owners_key, admins_personal_key):
        assert app_client.get(f"{API}/jobs", headers=bearer(created["secret"])).status_code == 200

    removed = app_client.delete(f"{API}/tenants/{team}/members/{admin.id}", headers=user.headers)
    left = app_client.delete(f"{API}/tenants/{team}/members/{leaver.id}", headers=leaver.headers)

    assert removed.status_code == 204, removed.text
    assert left.status_code == 204, left.text
    for created in (removed_key, leavers_key):
        response = app_client.get(f"{API}/jobs", headers=bearer(created["secret"]))
        assert_problem(response, 401, "invalid_token")
    listed = list_keys(app_client, user.headers, team)
    assert _key_in(listed, removed_key["id"])["revoked_at"] is not None
    assert _key_in(listed, leavers_key["id"])["revoked_at"] is not None
    assert _key_in(listed, owners_key["id"])["revoked_at"] is None
    # Only keys of the tenant they left: the rest keep working.
    for created in (owners_key, admins_personal_key):
        assert app_client.get(f"{API}/jobs", headers=bearer(created["secret"])).status_code == 200


def test_an_admin_demoted_to_member_loses_their_keys(
    app_client: TestClient, user: User, team: str, stack: Stack
) -> None:
    admin = _join(stack, team, Role.ADMIN)
    key = create_key(app_client, admin.headers, team, name="admin's")

    demoted = app_client.patch(
        f"{API}/tenants/{team}/members/{admin.id}",
        headers=user.headers,
        json={"role": "member"},
    )

    assert demoted.status_code == 200, demoted.text
    response = app_client.get(f"{API}/jobs", headers=bearer(key["secret"]))
    assert_problem(response, 401, "invalid_token")


def test_a_key_dies_with_its_creators_account(
    app_client: TestClient, stack: Stack, user: User, team: str
) -> None:
    from sqlalchemy import update

    from core.models import User as UserRow

    admin = _join(stack, team, Role.ADMIN)
    key = create_key(app_client, admin.headers, team, name="admin's")
    assert app_client.get(f"{API}/jobs", headers=bearer(key["secret"])).status_code == 200

    with stack.db.transaction() as session:
        session.execute(update(UserRow).where(UserRow.id == admin.id).values(is_active=False))

    response = app_client.get(f"{API}/jobs", headers=bearer(key["secret"]))
    assert_problem(response, 401, "invalid_token")
