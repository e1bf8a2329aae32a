"""The API as production runs it (the Procfile's `web`: uvicorn on a port), for clients
that need a real address, such as a Prometheus server scraping it."""

from __future__ import annotations

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
