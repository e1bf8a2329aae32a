"""Run several long-lived commands as one group: prefixed output, and all of them
stopped (SIGTERM, then SIGKILL) when one exits or the group is closed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO


@dataclass
class ProcessGroup:
    env: Mapping[str, str]
    cwd: str | None = None
    quiet: bool = False
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(  # noqa: S603 - argv lists built by this package
            list(argv),
            env=dict(self.env),
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Its own process group, so Ctrl-C reaches us first and we stop it in order.
            start_new_session=True,
        )
        self.procs[name] = proc
        assert proc.stdout is not None
        threading.Thread(target=self._pump, args=(name, proc.stdout), daemon=True).start()
        return proc

    def _pump(self, name: str, stream: IO[bytes]) -> None:
        for line in iter(stream.readline, b""):
            if not self.quiet:
                sys.stdout.write(f"{name:>7} | {line.decode(errors='replace')}")
                sys.stdout.flush()

    def wait_any(self) -> str:
        """Block until one process exits; return its name."""
        while True:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    return name
            time.sleep(0.2)

    def stop(self, timeout: float = 15.0) -> None:
        # SIGTERM to the leader only: a Celery worker then shuts its pool down warmly,
        # letting running tasks finish; the whole group is killed only on timeout.
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            # Whatever is still in the group (the leader past its timeout, or children it
            # left behind) is killed; a job cut short here is recovered by its lease.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
