"""The unversioned root: identity, liveness and readiness."""

from __future__ import annotations

import time
from datetime import datetime

from fastapi.testclient import TestClient


def test_health_and_root(app_client: TestClient) -> None:
    assert app_client.get("/healthz").json() == {"status": "ok"}
    assert app_client.get("/").json()["name"] == "conveyor"
    ready = app_client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "database": "ok",
        "broker": "ok",
        "kv_store": "ok",
        "storage": "ok",
    }


def test_readiness_is_checked_at_most_every_two_seconds(app_client: TestClient) -> None:
    started = time.monotonic()
    first = app_client.get("/readyz")
    second = app_client.get("/readyz")
    elapsed = time.monotonic() - started

    assert first.status_code == second.status_code == 200
    assert first.json()["status"] == "ok"
    checked = datetime.fromisoformat(first.json()["checked_at"])
    if elapsed < 2:  # the second call came within the first check's lifetime
        assert second.json()["checked_at"] == first.json()["checked_at"]
    time.sleep(2.1)
    third = app_client.get("/readyz").json()
    assert datetime.fromisoformat(third["checked_at"]) > checked
