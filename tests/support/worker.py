"""Real `celery worker` and `celery beat` subprocesses, as in production."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

BIN = Path(sys.executable).parent


def _spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill the process and its pool outright. A warm shutdown would wait for running
    tasks and put unacknowledged messages back, for a broker database and rows that the
    next test or session starts by emptying anyway; it costs seconds per worker."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


class WorkerProcess:
    def __init__(
        self,
        env: dict[str, str],
        log_dir: Path,
        concurrency: int = 2,
        beat: bool = True,
        queues: str = "default,uploads,system,webhooks",
        pool: str = "prefork",
        name: str | None = None,
        prefix: tuple[str, ...] = (),
    ) -> None:
        """The defaults are the Procfile's `worker`, reading its `system` and `webhooks`
        workers' queues too (account email, webhook deliveries), so one worker runs
        every job a test submits;
        `queues="agents", pool="threads"` is its `agents` worker. `name`: the node
        name, for several workers at once; `prefix`: what the command runs under
        (`ip netns exec HOST`, on a test host)."""
        self.log_path = log_dir / "worker.log"
        node = name or f"test-{queues.replace(',', '-')}-{os.getpid()}"
        self.proc = _spawn(
            [
                *prefix,
                str(BIN / "celery"),
                "-A",
                "worker.app",
                "worker",
                "-Q",
                queues,
                "--concurrency",
                str(concurrency),
                "--pool",
                pool,
                "--loglevel",
                "INFO",
                "--without-mingle",
                "--without-gossip",
                "-n",
                f"{node}@%h",
            ],
            env,
            self.log_path,
        )
        # The reconciler runs from beat, a process of its own as in production.
        self.beat = (
            None
            if not beat
            else _spawn(
                [
                    str(BIN / "celery"),
                    "-A",
                    "worker.app",
                    "beat",
                    "--loglevel",
                    "INFO",
                    "--schedule",
                    str(log_dir / "beat-schedule"),
                ],
                env,
                log_dir / "beat.log",
            )
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
        children: list[psutil.Process] = psutil.Process(self.proc.pid).children()
        return children

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the worker and its pool at once, as a lost machine would; beat lives."""
        _stop(self.proc)

    def stop(self) -> None:
        for proc in (self.beat, self.proc):
            if proc is not None:
                _stop(proc)
