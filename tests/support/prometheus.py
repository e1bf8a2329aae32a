"""A real Prometheus server (Debian's `prometheus`), scraping what a test names, with
Conveyor's alert rules loaded, and queried through its HTTP API."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import Server
from tests.support.servers import free_port

ALERTS = Path(__file__).resolve().parents[2] / "docs" / "prometheus" / "alerts.yml"


def binary(name: str) -> str | None:
    return shutil.which(name)


class PrometheusServer(Server):
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
        argv = [
            prometheus,
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        super().__init__("prometheus", argv, None, folder / "prometheus.log")
        self.http = httpx.Client(base_url=self.url, timeout=10)
        self.wait_until(lambda: self.http.get("/-/ready").status_code == 200)

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

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        self.http.close()
        super().stop(sig)
