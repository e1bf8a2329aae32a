"""The S3 endpoint a bench's api gets: the one configured (S3_ENDPOINT_URL and
DO_SPACES_BUCKET), or a moto server started for the run."""

from __future__ import annotations

import os
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from core.settings import Settings
from core.storage.s3 import S3Storage
from tests.bench.failures import BenchError
from tests.bench.stack import STARTUP_SECONDS, LoggedGroup

# moto accepts any credentials; they never leave this machine.
FAKE_KEY = "bench-access-key"
FAKE_SECRET = "bench-secret-key"  # noqa: S105 - not a secret
MOTO_REGION = "us-east-1"


@dataclass(frozen=True)
class S3Target:
    """Where the api stores files. `overrides`: the settings, as environment variables,
    that the api gets on top of the bench's own environment (none for a configured
    endpoint: the api reads the same variables the bench did)."""

    overrides: dict[str, str]
    moto: bool

    @classmethod
    def configured(cls) -> S3Target | None:
        if not os.environ.get("S3_ENDPOINT_URL", "").strip():
            return None
        if not os.environ.get("DO_SPACES_BUCKET", "").strip():
            raise BenchError("S3_ENDPOINT_URL is set but DO_SPACES_BUCKET is not")
        return cls(overrides={}, moto=False)

    @classmethod
    def for_moto(cls, port: int) -> S3Target:
        return cls(
            overrides={
                "S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
                "S3_REGION": MOTO_REGION,
                "DO_SPACES_BUCKET": f"conveyor-bench-{uuid.uuid4().hex[:12]}",
                "DO_SPACES_KEY": FAKE_KEY,
                "DO_SPACES_SECRET": FAKE_SECRET,
                "S3_ADDRESSING_STYLE": "path",
            },
            moto=True,
        )

    def settings(self, **values: Any) -> Settings:
        # Explicit values win over the environment and .env, as they do for the api.
        explicit: dict[str, Any] = {k.lower(): v for k, v in self.overrides.items()}
        return Settings(**explicit, **values)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def moto_argv(port: int) -> list[str]:
    # A process of its own: in a thread of the bench it would compete with the bench's
    # client for the GIL, and slow down whichever upload the bench is sending.
    return [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)]


def wait_moto(endpoint_url: str, group: LoggedGroup) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    last = "no answer"
    while time.monotonic() < deadline:
        group.check_alive()
        try:
            httpx.get(endpoint_url, timeout=5.0)
            return
        except httpx.TransportError as exc:
            last = type(exc).__name__
        time.sleep(0.2)
    raise BenchError(f"moto was not ready after {STARTUP_SECONDS:.0f} s: {last}")


def start_s3(group: LoggedGroup) -> S3Target:
    """The configured endpoint, or moto started in `group` (its own process: in a thread
    of the bench it would compete with the bench's client for the GIL). The processes
    the group starts next get the endpoint's settings."""
    target = S3Target.configured()
    if target is None:
        port = free_port()
        target = S3Target.for_moto(port)
        group.start("s3", moto_argv(port))
        wait_moto(target.overrides["S3_ENDPOINT_URL"], group)
    group.env = {**group.env, **target.overrides}
    return target


def storage_for_api(group: LoggedGroup, environment: str, secret_key: str) -> None:
    """Object storage for an api the group starts next, as production requires it:
    the configured endpoint, or moto with the bucket made."""
    target = start_s3(group)
    if target.moto:
        settings = target.settings(environment=environment, secret_key=secret_key)
        S3Storage(settings).ensure_bucket()
