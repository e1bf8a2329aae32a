"""What an event's body holds: `type`, `timestamp` and `data`, the job as
`GET /api/v1/jobs/{id}` shows it, serialized once per attempt."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from core.jobs.views import JobOut
from core.models import Job
from core.webhooks.events import TEST_EVENT


class JobGone(Exception):
    """The job the event is about was deleted (retention) before it was delivered."""


def job_event(
    session: Session, event: str, job_id: uuid.UUID, occurred_at: datetime, max_result_bytes: int
) -> bytes:
    job = session.get(Job, job_id)
    if job is None:
        raise JobGone(str(job_id))
    data: dict[str, Any] = JobOut.model_validate(job).model_dump(mode="json")
    # A large result stays out of the event (the receiver reads it from the API): a
    # receiver's body limit is often a few hundred KiB, and every retry resends it.
    omitted = len(_dumps(data["result"])) > max_result_bytes
    if omitted:
        data["result"] = None
    data["result_omitted"] = omitted
    # Where the job (its result included) is read, from the API's base URL.
    data["url"] = f"/api/v1/jobs/{job_id}"
    return body(event, occurred_at, data)


def test_event(endpoint_id: uuid.UUID, occurred_at: datetime) -> bytes:
    return body(
        TEST_EVENT,
        occurred_at,
        {"endpoint_id": str(endpoint_id), "message": "A test event from Conveyor"},
    )


def body(event: str, occurred_at: datetime, data: dict[str, Any]) -> bytes:
    return _dumps({"type": event, "timestamp": occurred_at.isoformat(), "data": data})


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
