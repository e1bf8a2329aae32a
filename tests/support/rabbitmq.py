"""RabbitMQ for the tests: the machine's server (RABBITMQ_URL, default guest on
localhost), with a virtual host of its own per use, so parallel tests never share a
queue."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import kombu

from tests.support import services

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"


def _ctl(*argv: str) -> None:
    subprocess.run(["rabbitmqctl", *argv], check=True, capture_output=True, timeout=60)


@contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """A fresh virtual host; yields its broker URL and deletes it afterwards."""
    base = os.environ.get("RABBITMQ_URL", DEFAULT_URL)
    if shutil.which("rabbitmqctl") is None:
        services.unavailable("rabbitmqctl is not installed (RabbitMQ tests)")
    try:
        with kombu.Connection(base, connect_timeout=3) as probe:
            probe.ensure_connection(max_retries=1)
    except Exception as exc:
        services.unavailable(f"RabbitMQ at {base} does not answer: {exc}")
    parts = urlsplit(base)
    name = f"conveyor-test-{uuid.uuid4().hex[:10]}"
    _ctl("add_vhost", name)
    try:
        _ctl("set_permissions", "-p", name, parts.username or "guest", ".*", ".*", ".*")
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        _ctl("delete_vhost", name)
