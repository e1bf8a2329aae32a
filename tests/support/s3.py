"""A real S3 HTTP endpoint for tests: moto's server on 127.0.0.1 and a free port, in a
thread of the test process. Credentials are fake and go into Settings, never into the
process environment. And a recorder of what the S3 adapter sends on the wire."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from moto.server import ThreadedMotoServer

from core.settings import Settings
from core.storage import Storage
from core.storage.s3 import S3Storage
from tests.support.smtp import free_port

FAKE_KEY = "test-access-key"
FAKE_SECRET = "test-secret-key"  # noqa: S105 - moto accepts any credentials
REGION = "us-east-1"


class MotoS3Server:
    """Use as a context manager; `endpoint_url` is set on construction."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    def __enter__(self) -> MotoS3Server:
        self._server.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.stop()

    def settings(self, data_dir: Path, bucket: str | None = None, **overrides: Any) -> Settings:
        """Test settings for S3 storage on this server, in a fresh bucket by default."""
        return s3_settings(
            self.endpoint_url, bucket or new_bucket_name(), data_dir=data_dir, **overrides
        )


def new_bucket_name() -> str:
    return f"conveyor-test-{uuid.uuid4().hex[:16]}"


def s3_settings(endpoint_url: str, bucket: str, *, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "data_dir": data_dir,
        "s3_endpoint_url": endpoint_url,
        "s3_region": REGION,
        "do_spaces_bucket": bucket,
        "do_spaces_key": FAKE_KEY,
        "do_spaces_secret": FAKE_SECRET,
        "s3_addressing_style": "path",
        # The smallest part S3 allows, so multipart tests need little data.
        "s3_part_size_mib": 5,
        "s3_connect_timeout_seconds": 5,
        "s3_read_timeout_seconds": 30,
        "s3_max_attempts": 2,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@dataclass(frozen=True)
class Sent:
    part_number: str  # the partNumber query parameter, "" for other requests
    body: bytes
    headers: dict[str, str]


def record_requests(storage: Storage, operation: str) -> list[Sent]:
    """Every `operation` request the S3 adapter's client sends from now on, as it goes on
    the wire; stays empty for local disk."""
    sent: list[Sent] = []
    if not isinstance(storage, S3Storage):
        return sent

    def record(request: Any, **_: Any) -> None:
        body = request.body
        if hasattr(body, "read"):
            position = body.tell()
            data = body.read()
            body.seek(position)
        else:
            data = bytes(body or b"")
        number = httpx.URL(request.url).params.get("partNumber", "")
        headers = {
            name: value.decode() if isinstance(value, bytes) else value
            for name, value in request.headers.items()
        }
        sent.append(Sent(number, data, headers))

    storage.client().meta.events.register(f"before-send.s3.{operation}", record)
    return sent
