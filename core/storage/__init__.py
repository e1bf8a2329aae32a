"""Object storage: uploads and the files derived from them.

Any S3-compatible service (DigitalOcean Spaces, AWS S3, MinIO) in production; local disk
for the embedded default, which runs with no servers. Both adapters take the same keys,
check them the same way and report failures as StorageError, so code that works on one
works on the other. Calls are synchronous: the API runs them in its thread pool.

Keys are server-generated (see core.uploads.keys); the checks in check_key are there so that a
key built wrongly fails loudly on both adapters instead of escaping the local root.
"""

from __future__ import annotations

import errno
import mmap
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote

from core.settings import ConfigurationError

if TYPE_CHECKING:
    from core.settings import Settings

# S3's limit on a key, in UTF-8 bytes.
MAX_KEY_BYTES = 1024
# SigV4 presigned URLs live at most a week.
MAX_PRESIGN_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    content_type: str | None


@dataclass(frozen=True)
class PresignedRequest:
    """A URL the client sends the object to with PUT, and the headers it must send (they
    are part of the signature: a different type or length is refused by the service)."""

    url: str
    headers: dict[str, str]


class StorageError(Exception):
    """A storage call failed. `transient`: the same call may succeed later (throttling,
    5xx, timeouts, lost connections), so a job retries; otherwise it fails at once.
    `not_found`: the object does not exist. The message never holds credentials."""

    def __init__(self, message: str, *, transient: bool = False, not_found: bool = False):
        # Defaults keep the exception picklable: unpickling calls cls(message) and then
        # restores the attributes from __dict__.
        super().__init__(message)
        self.transient = transient
        self.not_found = not_found


# What a sink accepts: any bytes-like object; a memory map is also sent as a file.
Chunk = bytes | bytearray | memoryview | mmap.mmap


class UploadSink(Protocol):
    """One object, written in order in constant memory. Call complete() or abort()."""

    def write(self, chunk: Chunk) -> None:
        """Buffer up to one part; a full part goes to storage at once. The chunk is not
        kept: the caller may reuse or free it once this returns."""

    def complete(self) -> ObjectInfo:
        """Make the object visible under its key, whole, or not at all."""

    def abort(self) -> None:
        """Discard what was written (S3: no orphaned parts; local: no temp file). Safe to
        call twice, after a failure and after complete() (then it does nothing). Never
        raises: it runs on failure paths, where its own error would hide the first one."""


class Storage(Protocol):
    def open_sink(self, key: str, content_type: str) -> UploadSink: ...

    def put_bytes(self, key: str, data: bytes, content_type: str) -> ObjectInfo: ...

    def put_file(self, key: str, path: Path, content_type: str) -> ObjectInfo:
        """Store a local file, which may be large."""

    def move(self, source: str, target: str, content_type: str) -> ObjectInfo:
        """Replace `target` with the object at `source`, which goes. StorageError with
        not_found when `source` is missing."""

    def download(self, key: str, path: Path) -> ObjectInfo:
        """Write the object to `path` (replaced atomically). StorageError with not_found
        when there is no such object."""

    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> Generator[bytes, None, None]:
        """The object's bytes as a stream. A missing object raises here, before the first
        chunk, so a caller can still answer 404. close() it when stopping early: that
        releases the file or the connection at once."""

    def head(self, key: str) -> ObjectInfo | None:
        """The object's size and type; None when it does not exist."""

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with `prefix` (which ends with "/");
        return how many were deleted."""

    def presign_put(
        self, key: str, size: int, content_type: str, expires_seconds: int
    ) -> PresignedRequest | None:
        """A direct upload to the service; None on local disk (the API signs its own)."""

    def presign_get(
        self, key: str, expires_seconds: int, filename: str | None, content_type: str | None
    ) -> str | None:
        """A download URL that makes the service answer with this Content-Disposition
        (attachment, `filename`) and Content-Type; None on local disk (the API streams)."""

    def ensure_bucket(self) -> None:
        """Create the bucket (local: the folder) if missing: dev and test start-up."""

    def ping(self) -> None:
        """Raise StorageError unless the bucket (local: a writable folder) is reachable."""


def open_storage(settings: Settings) -> Storage:
    """S3 when DO_SPACES_BUCKET is set; local disk otherwise, in dev and test only. Opening
    contacts nothing: the S3 client is built on first use. Keep one per process: it holds
    the client and its connection pool, and is safe to share between threads."""
    if settings.do_spaces_bucket is not None:
        if (settings.do_spaces_key is None) != (settings.do_spaces_secret is None):
            raise ConfigurationError(
                "Set both DO_SPACES_KEY and DO_SPACES_SECRET, or neither to use boto3's "
                "own credentials (environment, instance role, ~/.aws)."
            )
        # Imported here: a process that never opens S3 storage never imports boto3.
        from core.storage.s3 import S3Storage

        return S3Storage(settings)
    if not settings.is_dev:
        raise ConfigurationError(
            "No object storage configured: set DO_SPACES_BUCKET, DO_SPACES_KEY and "
            "DO_SPACES_SECRET (and S3_ENDPOINT_URL and S3_REGION for DigitalOcean Spaces, "
            "MinIO or another S3-compatible service). Local-disk storage is only for "
            "ENVIRONMENT=dev or test."
        )
    from core.storage.local import LocalStorage

    return LocalStorage(settings.storage_dir)


def check_key(key: str) -> None:
    """Raise ValueError unless `key` is a plain relative path of non-empty segments, none
    starting with "." (so no "." or ".." and no hidden files on local disk), without
    backslashes or control characters, at most MAX_KEY_BYTES long."""
    _check_path(key, "key")
    if key.endswith("/"):
        raise ValueError("key must not end with '/'")


def check_prefix(prefix: str) -> None:
    """Like check_key, but a prefix ends with "/": deleting "tenants/1" would also take
    "tenants/10/...", and an empty prefix the whole bucket."""
    if not prefix.endswith("/"):
        raise ValueError("prefix must end with '/'")
    _check_path(prefix[:-1], "prefix")


def _check_path(value: str, what: str) -> None:
    if not value:
        raise ValueError(f"{what} must not be empty")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise ValueError(f"{what} is longer than {MAX_KEY_BYTES} bytes")
    if "\\" in value or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError(f"{what} must not contain backslashes or control characters")
    for segment in value.split("/"):
        if not segment:
            # Also catches a leading "/": an absolute path.
            raise ValueError(f"{what} {value!r} has an empty segment or starts with '/'")
        if segment.startswith("."):
            raise ValueError(f"{what} {value!r} has a segment starting with '.'")


def check_presign(expires_seconds: int) -> None:
    if not 1 <= expires_seconds <= MAX_PRESIGN_SECONDS:
        raise ValueError(
            f"expires_seconds must be 1 to {MAX_PRESIGN_SECONDS}, got {expires_seconds}"
        )


def content_disposition(filename: str, disposition: str = "attachment") -> str:
    """A Content-Disposition value for a user's file name (RFC 6266): a quoted ASCII
    fallback, plus the exact name in `filename*` when it is not plain ASCII."""
    name = "".join(
        "_" if ch in '/\\"' else ch for ch in filename if ch.isprintable() and ch != "\x7f"
    ).strip()
    if not name:
        name = "download"
    fallback = name.encode("ascii", "replace").decode("ascii").replace("?", "_")
    value = f'{disposition}; filename="{fallback}"'
    if fallback != name:
        value += f"; filename*=UTF-8''{quote(name, safe='')}"
    return value


# OS errors a later attempt may not meet: a busy or interrupted call, a full disk that
# retention may free.
_TRANSIENT_ERRNOS = frozenset(
    {errno.EAGAIN, errno.EBUSY, errno.EINTR, errno.ETIMEDOUT, errno.ENOSPC, errno.EDQUOT}
)


def os_storage_error(
    action: str, key: str | None, exc: OSError, *, not_found: bool | None = None
) -> StorageError:
    """StorageError for a failed file operation; by default a missing file (or a folder
    where the file would be) is an object not found."""
    reason = exc.strerror or type(exc).__name__
    code = errno.errorcode.get(exc.errno or 0)
    if code:
        reason = f"{code} {reason}"
    subject = f"{action} {key!r}" if key is not None else action
    return StorageError(
        f"{subject} failed: {reason}",
        transient=exc.errno in _TRANSIENT_ERRNOS,
        not_found=(
            isinstance(exc, FileNotFoundError | IsADirectoryError | NotADirectoryError)
            if not_found is None
            else not_found
        ),
    )
