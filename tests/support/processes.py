"""Servers a test starts as subprocesses (uvicorn, Prometheus, Flower): started with
their output in a file, waited on until they answer, and stopped with their children;
and waiting on a condition."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")


def eventually(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """`check()`'s first answer that is not None, polled until `timeout`."""
    deadline = time.monotonic() + timeout
    while (found := check()) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.2)
    return found


class Server:
    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None, log: Path) -> None:
        self.name = name
        self.log_path = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until(self, answers: Callable[[], bool], timeout: float = 60) -> None:
        """Until `answers()` is true; a connection refused is not yet."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log()[-4000:]}")
            try:
                if answers():
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready after {timeout}s:\n{self.log()[-4000:]}")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
