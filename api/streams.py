"""A cap on the event streams one caller holds open on this API process.

Each open stream polls PostgreSQL; without a cap, one login or key could open
thousands. Per process: a caller spread over N API replicas may hold N times the cap.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Hashable


class Slot:
    """One open stream's place; `release` gives it back, once, however often called."""

    def __init__(self, slots: StreamSlots, caller: Hashable) -> None:
        self._slots = slots
        self._caller = caller
        self._released = False

    def release(self) -> None:
        with self._slots.lock:
            if self._released:
                return
            self._released = True
            self._slots.free(self._caller)


class StreamSlots:
    def __init__(self, per_caller: int) -> None:
        self.per_caller = per_caller
        self.lock = threading.Lock()
        self._open: Counter[Hashable] = Counter()

    def acquire(self, caller: Hashable) -> Slot | None:
        with self.lock:
            if self._open[caller] >= self.per_caller:
                return None
            self._open[caller] += 1
            return Slot(self, caller)

    def free(self, caller: Hashable) -> None:
        """Called with `lock` held, by a slot."""
        self._open[caller] -= 1
        if self._open[caller] <= 0:
            del self._open[caller]

    def open_count(self, caller: Hashable) -> int:
        with self.lock:
            return self._open[caller]
