"""Work done in batches off the caller's path: what callers add within an interval is
written together, by a thread of its own, in one go."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

log = logging.getLogger("conveyor.publish")

T = TypeVar("T")


class BackgroundBatch(Generic[T]):
    """Items held within `interval` of the first are handed to `write` together, by a
    daemon thread started on first use (in the process that uses it: a prefork child
    starts its own). Thread-safe. `close` writes what is pending; after it, nothing is
    held. `write` must not raise: nothing here retries."""

    def __init__(self, write: Callable[[list[T]], None], interval: float, name: str) -> None:
        self._write = write
        self._interval = interval
        self._name = name
        self._lock = threading.Lock()
        self._pending: list[T] = []
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, items: Iterable[T]) -> None:
        """Held for the next batch, or written at once if none is coming."""
        items = list(items)
        if not self.hold(items):
            self._write(items)

    def hold(self, items: Iterable[T]) -> bool:
        """Held for the next batch; False if none is coming (closed, or no thread to
        write it): then the caller writes them itself."""
        with self._lock:
            if self._closing.is_set() or not self._started():
                return False
            self._pending.extend(items)
        self._wake.set()
        return True

    def _started(self) -> bool:
        """Start the thread on first use; False if it cannot be started."""
        if self._thread is None:
            thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            try:
                thread.start()
            except RuntimeError as exc:  # "can't start new thread"
                log.warning("%s: writing at once: %s", self._name, exc)
                return False
            self._thread = thread
        return True

    def close(self) -> None:
        with self._lock:
            self._closing.set()
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join()
        self._flush()

    def _run(self) -> None:
        while not self._closing.is_set():
            self._wake.wait()
            self._wake.clear()
            # Let a batch gather: under load, many callers add within one interval.
            if self._closing.wait(self._interval):
                return  # close() writes what is pending
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        if batch:
            self._write(batch)
