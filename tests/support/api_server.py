"""The API as production runs it (the Procfile's `web`: uvicorn on a port), for clients
that need a real address, such as a Prometheus server scraping it."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from tests.support.processes import Server
from tests.support.servers import free_port
from tests.support.worker import BIN


class ApiServer(Server):
    def __init__(self, env: dict[str, str], log_dir: Path, port: int | None = None) -> None:
        """`port`: the one an earlier server had, to restart it where clients look."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [
            str(BIN / "uvicorn"),
            "api.main:app",
            "--host=127.0.0.1",
            f"--port={self.port}",
            "--no-server-header",
        ]
        super().__init__("the API", argv, env, log_dir / "api.log")
        self.wait_until(lambda: httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200)


class RestartableApi:
    """The API on one port, killed outright and started again there by `restart()`:
    what a client sees when its API restarts under it."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self._env = env
        self._log_dir = log_dir
        self.servers = [ApiServer(env, self._new_dir(0))]
        self.url = self.servers[0].url

    def _new_dir(self, number: int) -> Path:
        path = self._log_dir / f"api-{number}"
        path.mkdir()
        return path

    def restart(self) -> None:
        self.servers[-1].stop(signal.SIGKILL)
        again = ApiServer(self._env, self._new_dir(len(self.servers)), self.servers[0].port)
        self.servers.append(again)

    @property
    def restarts(self) -> int:
        return len(self.servers) - 1

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
