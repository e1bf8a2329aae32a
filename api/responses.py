"""Answering with a model already validated by the endpoint.

FastAPI re-validates a returned model against `response_model` (for a sync endpoint,
with another trip to the thread pool); the hot endpoints return this response instead.
`response_model` stays on the route for the OpenAPI document.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import Response
from pydantic import BaseModel

from core.identity.access import Principal
from core.jobs.submit import Submitted
from core.jobs.views import JobOut


def json_response(
    model: BaseModel, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        model.model_dump_json(),
        status_code=status_code,
        media_type="application/json",
        headers=dict(headers or {}),
    )


def accepted(submitted: Submitted, principal: Principal) -> Response:
    """`202` with a submitted job, as `principal` may see it, and its `Location`; a
    replayed one (same Idempotency-Key, perhaps long finished) says so."""
    headers = {"Location": f"/api/v1/jobs/{submitted.job.id}"}
    if submitted.replayed:
        headers["Idempotent-Replayed"] = "true"
    job = JobOut.seen_by(submitted.job, principal)
    return json_response(job, 202, headers)
