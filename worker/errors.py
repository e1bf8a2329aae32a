"""What a handler raises to steer the job protocol."""

from __future__ import annotations


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
