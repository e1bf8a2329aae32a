"""A real Prometheus server (Debian's `prometheus`), scraping what a test names, with
Conveyor's alert rules loaded, and queried through its HTTP API."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.servers import free_port

ALERTS = Path(__file__).resolve().parents[2] / "docs" / "prometheus" / "alerts.yml"


def binary(name: str) -> str | None:
    return shutil.which(name)


class PrometheusServer:
    def __init__(self, folder: Path, target: str, bearer_token: str) -> None:
        """Scrapes `target` (host:port) every second, with the token from a file as
        docs/monitoring.md's scrape config does."""
        prometheus = binary("prometheus")
        assert prometheus is not None
        folder.mkdir(parents=True, exist_ok=True)
        token_file = folder / "metrics-token"
        token_file.write_text(bearer_token)
        token_file.chmod(0o600)
        shutil.copy(ALERTS, folder / "alerts.yml")
        (folder / "prometheus.yml").write_text(
            "global:\n"
            "  scrape_interval: 1s\n"
            "  evaluation_interval: 1s\n"
            "rule_files: [alerts.yml]\n"
            "scrape_configs:\n"
            "  - job_name: conveyor-api\n"
            "    authorization:\n"
            f"      credentials_file: {token_file}\n"
            "    static_configs:\n"
            f"      - targets: ['{target}']\n"
        )
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = folder / "prometheus.log"
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    prometheus,
                    f"--config.file={folder / 'prometheus.yml'}",
                    f"--storage.tsdb.path={folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.http = httpx.Client(base_url=self.url, timeout=10)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.log()[-4000:]}")
            try:
                if self.http.get("/-/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"prometheus not ready:\n{self.log()[-4000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def query(self, promql: str) -> list[dict[str, Any]]:
        response = self.http.get("/api/v1/query", params={"query": promql})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def value(self, promql: str) -> float | None:
        """The query's one value, or None if it has no series."""
        result = self.query(promql)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def get(self, path: str) -> Any:
        response = self.http.get(path)
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
