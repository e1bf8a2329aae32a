"""GET /metrics: Prometheus's text format, for a scraper holding METRICS_TOKEN."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.problems import problem_response
from api.state import app_state
from core.errors import ErrorCode

router = APIRouter()


# Not in the OpenAPI document: it is for Prometheus, not for the API's clients.
@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    state = app_state(request)
    token = state.settings.metrics_token
    if not state.settings.metrics_enabled:
        return problem_response(request, ErrorCode.NOT_FOUND)
    if token is None:
        if not state.settings.is_dev:
            return problem_response(request, ErrorCode.NOT_FOUND)
    elif not _bearer_matches(request, token.get_secret_value()):
        return problem_response(request, ErrorCode.NOT_AUTHENTICATED)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _bearer_matches(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode())
