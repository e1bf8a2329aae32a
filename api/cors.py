"""Cross-origin calls from browser front ends, for the origins in CORS_ORIGINS only.

Credentials are bearer tokens the front end sends in `Authorization`, never cookies,
so the browser is never asked to include credentials and `*` stays safe where it is
configured. A refused preflight answers problem+json like every other error.
"""

from __future__ import annotations

import json

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp

from api.problems import PROBLEM_JSON, problem_body
from core.errors import ErrorCode

ALLOWED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
ALLOWED_HEADERS = (
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "X-Tenant-ID",
    "Last-Event-ID",
    "X-Request-ID",
)
EXPOSED_HEADERS = ("X-Request-ID", "Location", "Retry-After", "Idempotent-Replayed")
# How long a browser may reuse a preflight's answer.
PREFLIGHT_MAX_AGE_SECONDS = 600


class Cors(CORSMiddleware):
    def __init__(self, app: ASGIApp, origins: list[str]) -> None:
        super().__init__(
            app,
            allow_origins=origins,
            allow_methods=ALLOWED_METHODS,
            allow_headers=ALLOWED_HEADERS,
            allow_credentials=False,
            expose_headers=EXPOSED_HEADERS,
            max_age=PREFLIGHT_MAX_AGE_SECONDS,
        )

    def preflight_response(self, request_headers: Headers) -> Response:
        answer = super().preflight_response(request_headers)
        if answer.status_code < 400:
            return answer
        refused = bytes(answer.body).decode().removeprefix("Disallowed CORS ")
        body = problem_body(
            ErrorCode.CORS_REFUSED,
            detail=f"This cross-origin request is not allowed: its {refused}",
            refused=refused.split(", "),
        )
        headers = {k: v for k, v in answer.headers.items() if k.lower() != "content-length"}
        headers["content-type"] = PROBLEM_JSON
        return Response(json.dumps(body), status_code=answer.status_code, headers=headers)
