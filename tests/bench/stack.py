"""The stack a bench starts: a fresh PostgreSQL database and a flushed Redis database on
the servers of DATABASE_URL and REDIS_URL, and groups of processes (api, workers, moto)
that share one environment, write their output to files and keep its last lines."""

from __future__ import annotations

import os
import secrets
import socket
import sys
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import redis
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from core.dev.processes import ProcessGroup
from core.jobs.contracts import Queue
from core.migrate import upgrade
from core.settings import Settings
from tests.bench.cpu import load_average
from tests.bench.failures import BenchError
from tests.bench.options import (
    FairnessOptions,
    PipelineOptions,
    UploadOptions,
    WebhookOptions,
)
from tests.bench.output import say

DEFAULT_DATABASE_SERVER = "postgresql://postgres@127.0.0.1:5432"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
REPO_ROOT = Path(__file__).resolve().parents[2]
QUEUES = ",".join(q.value for q in Queue)
STARTUP_SECONDS = 60.0
TAIL_LINES = 30
CONNECT_ARGS = {"connect_timeout": 10, "application_name": "conveyor-bench"}


@dataclass
class LoggedGroup(ProcessGroup):
    """A ProcessGroup that also writes each process's output to a file and keeps its
    last lines, so a failed run can show why without flooding a successful one."""

    log_dir: Path = REPO_ROOT / ".conveyor"
    tails: dict[str, deque[str]] = field(default_factory=dict)
    _pumps_done: list[threading.Event] = field(default_factory=list)

    def _pump(self, name: str, stream: IO[bytes]) -> None:
        done = threading.Event()
        self._pumps_done.append(done)
        tail = self.tails.setdefault(name, deque(maxlen=TAIL_LINES))
        try:
            with (self.log_dir / f"{name}.log").open("wb") as log:
                for line in iter(stream.readline, b""):
                    log.write(line)
                    text_line = line.decode(errors="replace")
                    tail.append(text_line)
                    if not self.quiet:
                        sys.stdout.write(f"{name:>7} | {text_line}")
                        sys.stdout.flush()
        finally:
            done.set()

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            code = proc.poll()
            if code is not None:
                raise BenchError(f"{name} exited with code {code}")

    def roots(self) -> dict[str, int]:
        """The process id of each process started, by name: the roots of cpu.usage."""
        return {name: proc.pid for name, proc in self.procs.items()}

    def stop(self, timeout: float = 15.0) -> None:
        super().stop(timeout)
        # Let the pumps drain, so no process output lands after the summary.
        for done in self._pumps_done:
            done.wait(2.0)

    def print_tails(self) -> None:
        for name, tail in self.tails.items():
            if tail:
                say(f"--- last lines of {name} ({self.log_dir / name}.log) ---")
                sys.stdout.write("".join(tail))
        sys.stdout.flush()


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def api_argv(port: int, workers: int, app: str = "api.main:app") -> list[str]:
    return python_module(
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    )


def celery_worker_argv(
    app: str, node: str, concurrency: int, queues: str = QUEUES, pool: str = "prefork"
) -> list[str]:
    return python_module(
        "celery",
        "-A",
        app,
        "worker",
        "-Q",
        queues,
        "--concurrency",
        str(concurrency),
        "--pool",
        pool,
        "-n",
        f"{node}@%h",
    )


def celery_beat_argv(schedule: Path) -> list[str]:
    """Beat, whose process runs the reconciler and the metrics' roll-up, as in production."""
    return python_module("celery", "-A", "worker.app", "beat", "--schedule", str(schedule))


@dataclass(frozen=True)
class Servers:
    database: URL  # the bench database, psycopg2 driver
    redis_url: str

    @classmethod
    def from_environment(cls, database_name: str) -> Servers:
        server = make_url(os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_SERVER)
        # Only the server and credentials are taken; the database is always the bench's.
        database = server.set(drivername="postgresql+psycopg2", database=database_name)
        return cls(database=database, redis_url=os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL)

    @property
    def database_url(self) -> str:
        url: str = self.database.set(drivername="postgresql").render_as_string(hide_password=False)
        return url

    def describe(self) -> str:
        shown = self.database.set(drivername="postgresql").render_as_string(hide_password=True)
        return f"PostgreSQL {shown}, Redis {redis_display(self.redis_url)}"

    def engine(self, **options: Any) -> Engine:
        """An engine on the bench database."""
        return create_engine(self.database, connect_args=CONNECT_ARGS, **options)

    def prepare(self) -> None:
        say("preparing: fresh database, migrations, empty Redis database")
        self.recreate_database()
        self.flush_redis()

    def admin_engine(self) -> Engine:
        """An engine on the server's `postgres` database, each statement its own
        transaction, no connection kept."""
        return create_engine(
            self.database.set(database="postgres"),
            isolation_level="AUTOCOMMIT",
            poolclass=NullPool,
            connect_args=CONNECT_ARGS,
        )

    def recreate_database(self) -> None:
        name = self.database.database
        assert name is not None
        admin = self.admin_engine()
        try:
            with admin.connect() as conn:
                quoted = conn.dialect.identifier_preparer.quote(name)
                # FORCE: a previous run killed mid-way may still hold connections.
                conn.execute(text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
                conn.execute(text(f"CREATE DATABASE {quoted}"))
        finally:
            admin.dispose()
        upgrade(self.database.render_as_string(hide_password=False))

    def flush_redis(self) -> None:
        with redis.Redis.from_url(self.redis_url, socket_timeout=10) as client:
            client.flushdb()


def redis_display(url: str) -> str:
    password = urlsplit(url).password
    return url.replace(f":{password}@", ":***@") if password else url


def check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As uvicorn binds: the previous run's connections in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise BenchError(f"port {port} is in use; choose another with --port") from exc


@dataclass
class Stack:
    """What the processes of a run share: the servers, one environment, one secret key,
    one folder for their output; and the groups started, to stop and to explain."""

    servers: Servers
    environment: str
    log_dir: Path  # relative to the repository
    verbose: bool
    # Set on top of the environment every run gets.
    extra_env: Mapping[str, str] = field(default_factory=dict)
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(36))
    groups: list[LoggedGroup] = field(default_factory=list)

    @classmethod
    def for_run(
        cls,
        opts: PipelineOptions | UploadOptions | FairnessOptions | WebhookOptions,
        log_dir: Path,
        extra_env: Mapping[str, str],
    ) -> Stack:
        return cls(
            servers=Servers.from_environment(opts.database_name),
            environment=opts.environment,
            log_dir=log_dir,
            verbose=opts.verbose,
            extra_env=extra_env,
        )

    @property
    def log_path(self) -> Path:
        return REPO_ROOT / self.log_dir

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "ENVIRONMENT": self.environment,
            "SECRET_KEY": self.secret_key,
            "DATABASE_URL": self.servers.database_url,
            "REDIS_URL": self.servers.redis_url,
            # BROKER_URL wins over REDIS_URL; pin it to the Redis database just flushed.
            "BROKER_URL": self.servers.redis_url,
            # One token serves the whole run, however long --timeout lets it be.
            "ACCESS_TOKEN_MINUTES": "1440",
            # With --environment dev, email.send writes each email to DATA_DIR's outbox,
            # and the api keeps files there: keep them out of the ones `make dev` uses.
            "DATA_DIR": str(self.log_path),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }

    def settings(self) -> Settings:
        env = self.env()
        return Settings(
            environment=env["ENVIRONMENT"],
            secret_key=env["SECRET_KEY"],
            database_url=env["DATABASE_URL"],
            redis_url=env["REDIS_URL"],
            broker_url=env["BROKER_URL"],
        )

    def say_where(self) -> None:
        say(f"  {self.servers.describe()}; {os.cpu_count()} cores, load {load_average()}")
        say(f"  process output in {self.log_path}/")

    @contextmanager
    def group(self) -> Iterator[LoggedGroup]:
        """A group of processes with the run's environment, stopped on leaving."""
        self.log_path.mkdir(parents=True, exist_ok=True)
        group = LoggedGroup(
            env=self.env(), cwd=str(REPO_ROOT), quiet=not self.verbose, log_dir=self.log_path
        )
        self.groups.append(group)
        try:
            yield group
        finally:
            group.stop()
