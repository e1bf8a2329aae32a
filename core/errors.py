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
    WEBHOOK_URL_REFUSED = ("webhook_url_refused", 422, "Webhooks may not be sent to this URL")
    WEBHOOK_LIMIT_REACHED = (
        "webhook_limit_reached",
        409,
        "The tenant has as many webhook endpoints as it may",
    )
    NOT_AUTHENTICATED = ("not_authenticated", 401, "Authentication required")
    INVALID_TOKEN = ("invalid_token", 401, "The token is not valid")
    INVALID_CREDENTIALS = ("invalid_credentials", 401, "Wrong email or password")
    INVALID_RESET_CODE = ("invalid_reset_code", 400, "The code is wrong or has expired")
    INVALID_VERIFICATION_CODE = (
        "invalid_verification_code",
        400,
        "The code is wrong, has expired, or was asked for from another place",
    )
    WRONG_PASSWORD = ("wrong_password", 403, "The current password is wrong")
    FORBIDDEN = ("forbidden", 403, "Your role does not allow this")
    INSUFFICIENT_SCOPE = ("insufficient_scope", 403, "The API key lacks a scope")
    USER_LOGIN_REQUIRED = ("user_login_required", 403, "This needs a user login, not an API key")
    NOT_FOUND = ("not_found", 404, "Not found")
    TENANT_NOT_FOUND = ("tenant_not_found", 404, "Tenant not found")
    JOB_NOT_FOUND = ("job_not_found", 404, "Job not found")
    MEMBER_NOT_FOUND = ("member_not_found", 404, "Member not found")
    INVITATION_NOT_FOUND = ("invitation_not_found", 404, "Invitation not found")
    API_KEY_NOT_FOUND = ("api_key_not_found", 404, "API key not found")
    UPLOAD_NOT_FOUND = ("upload_not_found", 404, "Upload not found")
    DERIVED_NOT_FOUND = ("derived_file_not_found", 404, "Derived file not found")
    WORKFLOW_NOT_FOUND = ("workflow_not_found", 404, "No agent workflow by that name")
    WEBHOOK_NOT_FOUND = ("webhook_not_found", 404, "Webhook endpoint not found")
    WEBHOOK_DELIVERY_NOT_FOUND = (
        "webhook_delivery_not_found",
        404,
        "No delivery by that id to this endpoint",
    )
    METHOD_NOT_ALLOWED = ("method_not_allowed", 405, "Method not allowed")
    EMAIL_TAKEN = ("email_taken", 409, "An account with this email exists")
    IDEMPOTENCY_CONFLICT = (
        "idempotency_key_reused",
        409,
        "This Idempotency-Key was used with a different request",
    )
    JOB_FINISHED = ("job_finished", 409, "The job has already finished")
    ALREADY_MEMBER = ("already_member", 409, "Already a member or invited")
    LAST_OWNER = ("last_owner", 409, "A tenant needs at least one owner")
    PERSONAL_TENANT = ("personal_tenant", 409, "A personal tenant has only its owner")
    UPLOAD_NOT_READY = ("upload_not_ready", 409, "The upload has not been completed")
    UPLOAD_INCOMPLETE = (
        "upload_incomplete",
        409,
        "The uploaded object is missing or the wrong size",
    )
    PAYLOAD_TOO_LARGE = ("payload_too_large", 413, "The request body is too large")
    CORS_REFUSED = ("cors_refused", 400, "This cross-origin request is not allowed")
    EMPTY_FILE = ("empty_file", 422, "The file is empty")
    NO_FILE = ("no_file", 422, "The request has no file part")
    UPLOAD_HAS_NO_TEXT = ("upload_has_no_text", 422, "The upload has no text to read yet")
    TOO_MANY_REQUESTS = ("too_many_requests", 429, "Too many attempts; try again later")
    CLIENT_VERIFICATION_REQUIRED = (
        "client_verification_required",
        429,
        "Too many sign-ins to this account from new places: confirm this one with the "
        "code POST /api/v1/auth/login/verify-client/request emails to the account",
    )
    STORAGE_QUOTA_EXCEEDED = (
        "storage_quota_exceeded",
        429,
        "The tenant's storage quota is used up; delete uploads to make room",
    )
    QUEUED_JOBS_QUOTA_EXCEEDED = (
        "queued_jobs_quota_exceeded",
        429,
        "The tenant has as many queued jobs as its quota allows; try again once some have run",
    )
    SUBMIT_RATE_EXCEEDED = (
        "submit_rate_exceeded",
        429,
        "The tenant submitted as many jobs as its rate limit allows; try again later",
    )
    TOO_MANY_STREAMS = (
        "too_many_streams",
        429,
        "Too many open event streams; close one or poll the JSON listing",
    )
    SERVICE_UNAVAILABLE = ("service_unavailable", 503, "A backing service is unavailable")
    AGENTS_NOT_CONFIGURED = (
        "agents_not_configured",
        503,
        "Agent runs need OPENAI_API_KEY or OPENAI_BASE_URL on the server",
    )
    INTERNAL = ("internal_error", 500, "Internal server error")

    def __init__(self, code: str, http_status: int, title: str) -> None:
        self.code = code
        self.http_status = http_status
        self.title = title


class ConveyorError(Exception):
    """An expected failure with a stable code; `extra` lands in the problem body."""

    def __init__(
        self,
        error: ErrorCode,
        detail: str | None = None,
        *,
        retry_after: float | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or error.title)
        self.error = error
        self.detail = detail or error.title
        # Seconds the client should wait before trying again (rate limits).
        self.retry_after = retry_after
        self.extra = extra
