"""The one error type that crosses layers, and its stable codes.

Each code carries its HTTP status and a title; the API renders any `ConveyorError` as
`application/problem+json` (RFC 9457). Clients branch on `code`, never on `detail`.
"""

from __future__ import annotations

from enum import Enum
from typing import Any


class ErrorCode(Enum):
    BAD_REQUEST = ("bad_request", 400, "The request could not be read")
    VALIDATION_FAILED = ("validation_failed", 422, "The request is not valid")
    UNKNOWN_JOB_KIND = ("unknown_job_kind", 422, "Unknown job kind")
    NOT_AUTHENTICATED = ("not_authenticated", 401, "Authentication required")
    INVALID_TOKEN = ("invalid_token", 401, "The token is not valid")
    INVALID_CREDENTIALS = ("invalid_credentials", 401, "Wrong email or password")
    NOT_FOUND = ("not_found", 404, "Not found")
    TENANT_NOT_FOUND = ("tenant_not_found", 404, "Tenant not found")
    JOB_NOT_FOUND = ("job_not_found", 404, "Job not found")
    METHOD_NOT_ALLOWED = ("method_not_allowed", 405, "Method not allowed")
    EMAIL_TAKEN = ("email_taken", 409, "An account with this email exists")
    IDEMPOTENCY_CONFLICT = (
        "idempotency_key_reused",
        409,
        "This Idempotency-Key was used with a different request",
    )
    JOB_FINISHED = ("job_finished", 409, "The job has already finished")
    PAYLOAD_TOO_LARGE = ("payload_too_large", 413, "The request body is too large")
    SERVICE_UNAVAILABLE = ("service_unavailable", 503, "A backing service is unavailable")
    INTERNAL = ("internal_error", 500, "Internal server error")

    def __init__(self, code: str, http_status: int, title: str) -> None:
        self.code = code
        self.http_status = http_status
        self.title = title


class ConveyorError(Exception):
    """An expected failure with a stable code; `extra` lands in the problem body."""

    def __init__(self, error: ErrorCode, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or error.title)
        self.error = error
        self.detail = detail or error.title
        self.extra = extra
