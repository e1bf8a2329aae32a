"""Tenants, members and API keys set up the way a client does: over HTTP."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import User

API = "/api/v1"
ALL_JOB_SCOPES = ["jobs:read", "jobs:write"]


def in_tenant(headers: dict[str, str], tenant_id: str | None) -> dict[str, str]:
    """The caller's headers with `X-Tenant-ID` set (or left out for None)."""
    return {**headers, "X-Tenant-ID": tenant_id} if tenant_id else dict(headers)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def new_email(label: str = "invitee") -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}@example.com"


def personal_tenant(client: TestClient, user: User) -> str:
    response = client.get(f"{API}/users/me", headers=user.headers)
    assert response.status_code == 200, response.text
    tenant_id: str = response.json()["personal_tenant_id"]
    return tenant_id


def create_tenant(client: TestClient, user: User, name: str = "Team") -> str:
    response = client.post(f"{API}/tenants", headers=user.headers, json={"name": name})
    assert response.status_code == 201, response.text
    assert response.json()["role"] == "owner"
    tenant_id: str = response.json()["id"]
    return tenant_id


def add_member(
    client: TestClient, admin: User, tenant_id: str, email: str, role: str = "member"
) -> dict[str, Any]:
    response = client.post(
        f"{API}/tenants/{tenant_id}/members",
        headers=admin.headers,
        json={"email": email, "role": role},
    )
    assert response.status_code == 201, response.text
    member: dict[str, Any] = response.json()
    return member


def create_key(
    client: TestClient,
    headers: dict[str, str],
    tenant_id: str | None,
    scopes: list[str] | None = None,
    name: str = "ci",
) -> dict[str, Any]:
    """A new key of `tenant_id` (the caller's personal tenant for None), with its secret."""
    response = client.post(
        f"{API}/api-keys",
        headers=in_tenant(headers, tenant_id),
        json={"name": name, "scopes": ALL_JOB_SCOPES if scopes is None else scopes},
    )
    assert response.status_code == 201, response.text
    key: dict[str, Any] = response.json()
    return key


def list_keys(client: TestClient, headers: dict[str, str], tenant_id: str | None) -> list[Any]:
    response = client.get(f"{API}/api-keys", headers=in_tenant(headers, tenant_id))
    assert response.status_code == 200, response.text
    keys: list[Any] = response.json()
    return keys


def job_ids(client: TestClient, headers: dict[str, str], tenant_id: str | None = None) -> set[str]:
    """Every job the caller can list in the tenant (one page of 100 is plenty here)."""
    response = client.get(
        f"{API}/jobs", headers=in_tenant(headers, tenant_id), params={"limit": 100}
    )
    assert response.status_code == 200, response.text
    assert response.json()["next_cursor"] is None
    return {job["id"] for job in response.json()["items"]}


def tenant_ids(client: TestClient, user: User) -> dict[str, str]:
    """The caller's tenants, id -> role."""
    response = client.get(f"{API}/tenants", headers=user.headers)
    assert response.status_code == 200, response.text
    return {t["id"]: t["role"] for t in response.json()}


def member_emails(client: TestClient, user: User, tenant_id: str) -> dict[str, str]:
    """Members and invitations of the tenant, email -> status."""
    response = client.get(f"{API}/tenants/{tenant_id}/members", headers=user.headers)
    assert response.status_code == 200, response.text
    return {m["email"]: m["status"] for m in response.json()}
