"""What agent-run tests share: a stand-in for what a running workflow reports to its
job, a document to read, and starting runs over HTTP."""

from __future__ import annotations

import io
from typing import Any

from fastapi.testclient import TestClient

from core.jobs.states import EventType
from tests.support import jobs
from tests.support.factories import User
from tests.support.worker import WorkerProcess
from worker.errors import JobCancelled


class Recorder:
    """Events in a list; cancels at the checkpoint after `cancel_after` events."""

    def __init__(self, cancel_after: int | None = None) -> None:
        self.events: list[tuple[EventType, dict[str, Any]]] = []
        self.cancel_after = cancel_after

    def event(self, type_: EventType, data: dict[str, Any]) -> None:
        self.events.append((type_, data))

    def checkpoint(self, *, now: bool = False) -> None:
        if self.cancel_after is not None and len(self.events) >= self.cancel_after:
            raise JobCancelled("test")

    def kinds(self) -> list[str]:
        return [str(kind) for kind, _ in self.events]


API = "/api/v1"

DOCUMENT = (
    "Harbour Lights Quarterly\n\nRevenue grew 12 percent, led by the Lisbon ferry line. "
    "Maria Okafor joins as chief operating officer.\n\nThe Porto terminal opens in May."
)


def start(client: TestClient, user: User, workflow: str, run_input: dict[str, Any]) -> Any:
    return client.post(
        f"{API}/agents/{workflow}/runs", headers=user.headers, json={"input": run_input}
    )


def started(client: TestClient, user: User, workflow: str, run_input: dict[str, Any]) -> Any:
    response = start(client, user, workflow, run_input)
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == f"{API}/jobs/{response.json()['id']}"
    return response.json()


def text_upload(client: TestClient, user: User, body: str, worker: WorkerProcess) -> str:
    """A text file uploaded and processed by the uploads worker; its id."""
    response = client.post(
        f"{API}/uploads",
        headers=user.headers,
        files={"file": ("report.txt", io.BytesIO(body.encode()), "text/plain")},
    )
    assert response.status_code == 201, response.text
    created = response.json()
    job = jobs.wait_for(client, user.headers, created["job"]["id"], timeout=60)
    assert job["status"] == "succeeded", job
    upload_id: str = created["upload"]["id"]
    return upload_id
