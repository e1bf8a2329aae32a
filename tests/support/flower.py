"""A real Flower (`celery -A worker.flower flower`, as `conveyor flower` runs it),
watching the test session's broker, and read through its own HTTP API."""

from __future__ import annotations

import secrets
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import Server
from tests.support.servers import free_port
from tests.support.worker import BIN

# What Flower counts per worker and shows on its dashboard.
COUNTED = ("task-succeeded", "task-failed", "task-retried", "task-revoked")


class FlowerProcess(Server):
    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.login = ("monitor", secrets.token_urlsafe(12))
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        argv = [
            str(BIN / "celery"),
            "-A",
            "worker.flower",
            "flower",
            "--address=127.0.0.1",
            f"--port={port}",
        ]
        env = {**env, "FLOWER_BASIC_AUTH": ":".join(self.login)}
        super().__init__("flower", argv, env, log_dir / "flower.log")
        self.http = httpx.Client(base_url=self.url, auth=self.login, timeout=10)

    def wait_for_workers(self, count: int, timeout: float = 60) -> None:
        def seen() -> bool:
            response = self.http.get("/api/workers", params={"refresh": 1})
            return response.status_code == 200 and len(response.json()) >= count

        self.wait_until(seen, timeout)

    def task(self, task_id: str) -> dict[str, Any]:
        """What Flower shows of the task; {} while none of its events has arrived."""
        response = self.http.get(f"/api/task/info/{task_id}")
        if response.status_code == 404:
            return {}
        assert response.status_code == 200, response.text
        info: dict[str, Any] = response.json()
        return info

    def counters(self) -> Counter[str]:
        """The dashboard's counters, summed over the workers."""
        response = self.http.get("/workers", params={"json": 1})
        assert response.status_code == 200, response.text
        total: Counter[str] = Counter()
        for worker in response.json()["data"]:
            total.update({name: worker.get(name, 0) for name in COUNTED})
        return total

    def revoke(self, task_id: str, *, terminate: bool = False) -> None:
        params = {"terminate": "true"} if terminate else {}
        response = self.http.post(f"/api/task/revoke/{task_id}", params=params)
        assert response.status_code == 200, response.text

    def stop(self, sig: signal.Signals = signal.SIGKILL) -> None:
        self.http.close()
        super().stop(sig)
