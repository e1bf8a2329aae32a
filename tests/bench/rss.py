"""Resident memory of a process and its children (psutil), and the kernel's high-water
mark of the process (Linux /proc), for the api's peak while it receives an upload."""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType

import psutil

RSS_INTERVAL_SECONDS = 0.05


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for member in [proc, *proc.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def _proc_file(pid: int, name: str) -> Path:
    return Path("/proc") / str(pid) / name


def reset_high_water_mark(pid: int) -> bool:
    """Linux: `5` to clear_refs resets the kernel's peak RSS (VmHWM) of a process."""
    try:
        _proc_file(pid, "clear_refs").write_text("5")
    except OSError:
        return False
    return True


def high_water_mark(pid: int) -> int | None:
    try:
        status = _proc_file(pid, "status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


class RssSampler:
    """Resident memory of a process and its children, every 50 ms from a thread of its
    own (the event loop's thread is busy sending). The kernel's high-water mark of the
    process, reset on entry, catches a peak that falls between two samples."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._proc = psutil.Process(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.sampled_peak = 0
        self.kernel_peak: int | None = None
        self._hwm_reset = False

    def _sample(self) -> None:
        try:
            self.sampled_peak = max(self.sampled_peak, tree_rss(self._proc))
        except psutil.NoSuchProcess:
            self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(RSS_INTERVAL_SECONDS):
            self._sample()

    def __enter__(self) -> RssSampler:
        self._hwm_reset = reset_high_water_mark(self.pid)
        self._sample()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        if self._hwm_reset:
            self.kernel_peak = high_water_mark(self.pid)
