"""What a client sees of tenants, members and API keys, read (and keys made) over HTTP.

To set a tenant up for a test whose subject is something else, use the factories in
tests/support/factories.py instead.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient

from tests.support.factories import User

API = "/api/v1"
ALL_JOB_SCOPES = ["jobs:read", "jobs:write"]


def in_tenant(headers: dict[str, str], tenant_id: str | uuid.UUID | None) -> dict[str, str]:
    """The caller's headers with `X-Tenant-ID` set (or left out for None)."""
    return {**headers, "X-Tenant-ID": str(tenant_id)} if tenant_id else dict(headers)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def create_key(
    client: TestClient,
    headers: dict[str, str],
    tenant_id: str | uuid.UUID | None,
    scopes: list[str] | None = None,
    name: str = "ci",
) -> dict[str, Any]:
    """A new key of `tenant_id` (the caller's personal tenant for None), with its secret,
    made over HTTP as a client would."""
    response = client.post(
        f"{API}/api-keys",
        headers=in_tenant(headers, tenant_id),
        json={"name": name, "scopes": ALL_JOB_SCOPES if scopes is None else scopes},
    )
    assert response.status_code == 201, response.text
    key: dict[str, Any] = response.json()
    return key


def list_keys(
    client: TestClient, headers: dict[str, str], tenant_id: str | uuid.UUID | None
) -> list[Any]:
    response = client.get(f"{API}/api-keys", headers=in_tenant(headers, tenant_id))
    assert response.status_code == 200, response.text
    keys: list[Any] = response.json()
    return keys


def job_ids(
    client: TestClient, headers: dict[str, str], tenant_id: str | uuid.UUID | None = None
) -> set[str]:
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


def member_emails(client: TestClient, user: User, tenant_id: str | uuid.UUID) -> dict[str, str]:
    """Members and invitations of the tenant, email -> status."""
    response = client.get(f"{API}/tenants/{tenant_id}/members", headers=user.headers)
    assert response.status_code == 200, response.text
    return {m["email"]: m["status"] for m in response.json()}
