"""A real `celery worker` subprocess (with embedded beat, so the reconciler runs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

BIN = Path(sys.executable).parent


class WorkerProcess:
    def __init__(self, env: dict[str, str], log_path: Path, concurrency: int = 2) -> None:
        self.log_path = log_path
        schedule = log_path.with_suffix(".schedule")
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                str(BIN / "celery"),
                "-A",
                "worker.app",
                "worker",
                "--beat",
                "--schedule",
                str(schedule),
                "-Q",
                "default,uploads,agents",
                "--concurrency",
                str(concurrency),
                "--pool",
                "prefork",
                "--loglevel",
                "INFO",
                "--without-mingle",
                "--without-gossip",
                "-n",
                f"test-{os.getpid()}@%h",
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_for("ready.", timeout=60)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log()[-4000:]}")
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready after {timeout}s:\n{self.log()[-4000:]}")

    def pool_children(self) -> list[psutil.Process]:
        """The prefork pool processes (beat runs as another child; it is excluded)."""
        children = psutil.Process(self.proc.pid).children()
        return [c for c in children if "beat" not in " ".join(c.cmdline()).lower()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
