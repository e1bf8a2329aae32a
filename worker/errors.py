"""What a handler raises to steer the job protocol."""

from __future__ import annotations

from core.storage import StorageError


class TransientJobError(Exception):
    """Worth another attempt: rate limits, 5xx, timeouts, connection loss."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentJobError(Exception):
    """Retrying cannot help: the job fails at once with `type` and the message."""

    def __init__(self, message: str, *, type: str = "job_failed") -> None:  # noqa: A002
        super().__init__(message)
        self.type = type


# BaseException, like KeyboardInterrupt: a handler's `except Exception` around an HTTP
# call must not swallow the order to stop.
class JobCancelled(BaseException):
    """Raised at a checkpoint once the owner has asked to cancel."""


class LeaseLost(BaseException):
    """Another attempt owns the job now (our lease expired); stop without writing."""


def storage_failure(exc: StorageError, doing: str) -> Exception:
    """The job error for a failed storage call made while `doing` something."""
    if exc.transient:
        return TransientJobError(f"Storage unavailable while {doing}")
    if exc.not_found:
        return PermanentJobError("The uploaded file is not in storage", type="upload_missing")
    return PermanentJobError(f"Storage refused {doing}", type="storage_error")
