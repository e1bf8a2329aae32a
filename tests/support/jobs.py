"""Submitting and waiting on jobs the way a client does: over HTTP."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient

TERMINAL = {"succeeded", "failed", "cancelled"}


def submit(
    client: TestClient,
    headers: dict[str, str],
    kind: str,
    job_input: dict[str, Any] | None = None,
    **extra_headers: str,
) -> dict[str, Any]:
    response = client.post(
        "/api/v1/jobs",
        json={"kind": kind, "input": job_input or {}},
        headers={**headers, **extra_headers},
    )
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def get(client: TestClient, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/jobs/{job_id}", headers=headers)
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


def wait_for(
    client: TestClient,
    headers: dict[str, str],
    job_id: str,
    statuses: set[str] | None = None,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Poll until the job reaches one of `statuses` (default: any terminal one)."""
    wanted = statuses or TERMINAL
    deadline = time.monotonic() + timeout
    job = get(client, headers, job_id)
    while job["status"] not in wanted:
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['status']} after {timeout}s: {job}")
        time.sleep(0.1)
        job = get(client, headers, job_id)
    return job


def events(
    client: TestClient, headers: dict[str, str], job_id: str, after: int = 0
) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/jobs/{job_id}/events", params={"after": after}, headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items
