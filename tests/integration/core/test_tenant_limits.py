"""A tenant's limits: an operator sets its own concurrency cap with `conveyor
tenant-limits`; its members read every limit at GET /api/v1/tenants/{id}/limits."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from core.cli import main
from tests.support.factories import User
from tests.support.problems import assert_problem
from tests.support.stack import Stack


def limits(client: TestClient, user: User, tenant_id: uuid.UUID) -> dict[str, object]:
    response = client.get(f"/api/v1/tenants/{tenant_id}/limits", headers=user.headers)
    assert response.status_code == 200, response.text
    found: dict[str, object] = response.json()
    return found


def test_an_operator_sets_a_tenants_own_cap_and_its_members_see_it(
    stack: Stack, app_client: TestClient, user: User, capsys: pytest.CaptureFixture[str]
) -> None:
    tenant = user.personal_tenant_id
    default = stack.settings.tenant_concurrency
    assert limits(app_client, user, tenant) == {
        "max_concurrency": default,
        "max_queued_jobs": stack.settings.tenant_max_queued_jobs,
        "queued_jobs": 0,
        "submit_limit": stack.settings.tenant_submit_limit,
        "submit_window_seconds": stack.settings.tenant_submit_window_seconds,
    }

    assert main(["tenant-limits", str(tenant), "--concurrency", "3"]) == 0
    assert "concurrency cap 3 per queue (its own)" in capsys.readouterr().out
    assert limits(app_client, user, tenant)["max_concurrency"] == 3

    assert main(["tenant-limits", str(tenant), "--concurrency", "default"]) == 0
    assert f"cap {default} per queue (TENANT_CONCURRENCY)" in capsys.readouterr().out
    assert limits(app_client, user, tenant)["max_concurrency"] == default


def test_the_command_refuses_what_is_not_a_cap_or_a_tenant(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["tenant-limits", str(uuid.uuid4()), "--concurrency", "-1"])
    assert exited.value.code == 2
    assert main(["tenant-limits", str(uuid.uuid4())]) == 1
    assert "Tenant not found" in capsys.readouterr().err


def test_only_members_read_a_tenants_limits(
    app_client: TestClient, user: User, other_user: User
) -> None:
    response = app_client.get(
        f"/api/v1/tenants/{user.personal_tenant_id}/limits", headers=other_user.headers
    )
    assert_problem(response, 404, "tenant_not_found")
