"""boto3, botocore and file errors of object storage, as StorageError: transient or
not, and not found or not."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from boto3.exceptions import Boto3Error, RetriesExceededError, S3UploadFailedError
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    IncompleteReadError,
    SSLError,
)

from core.storage import StorageError, os_storage_error

NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
MISSING_BUCKET_CODES = frozenset({"NoSuchBucket", "404", "NotFound"})
# Error codes a later attempt may not meet, beside HTTP 429 and 5xx.
TRANSIENT_CODES = frozenset(
    {
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "InternalError",
        "ServiceUnavailable",
    }
)
ERRORS = (BotoCoreError, ClientError, Boto3Error, OSError)


@contextmanager
def translated(action: str, key: str | None) -> Iterator[None]:
    """Turn boto3, botocore and file errors raised inside into StorageError."""
    try:
        yield
    except StorageError:
        raise
    except ERRORS as exc:
        raise translate(action, key, exc) from exc


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def translate(action: str, key: str | None, exc: BaseException) -> StorageError:
    cause = _underlying(exc)
    subject = f"S3 {action} {key!r}" if key is not None else f"S3 {action}"
    if isinstance(cause, ClientError):
        code = error_code(cause)
        status = int(cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        message = str(cause.response.get("Error", {}).get("Message", "")) or f"HTTP {status}"
        return StorageError(
            f"{subject} failed: {code or status}: {message}",
            transient=status == 429 or status >= 500 or code in TRANSIENT_CODES,
            not_found=code in NOT_FOUND_CODES,
        )
    if isinstance(cause, SSLError):
        # A certificate problem does not fix itself.
        return StorageError(f"{subject} failed: {cause}", transient=False)
    if isinstance(cause, ConnectionError | HTTPClientError | IncompleteReadError):
        return StorageError(f"{subject} failed: {cause}", transient=True)
    if isinstance(cause, RetriesExceededError):
        # s3transfer gave up retrying a download stream that kept breaking.
        return StorageError(f"{subject} failed: {cause}", transient=True)
    if isinstance(cause, OSError):
        # A local file (the source of put_file, the target of download) failed.
        return os_storage_error(action, key, cause, not_found=False)
    # NoCredentialsError, ParamValidationError and the like: configuration or a bug.
    return StorageError(f"{subject} failed: {type(cause).__name__}: {cause}", transient=False)


def _underlying(exc: BaseException) -> BaseException:
    # upload_file raises S3UploadFailedError from inside its `except ClientError`, so the
    # error with the code and status is its context.
    while isinstance(exc, S3UploadFailedError) and exc.__context__ is not None:
        exc = exc.__context__
    return exc
