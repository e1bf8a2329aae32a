"""The readiness probe's checks, run at most once per `max_age` per API process.

`/readyz` needs no login and pings every backing service: without a cache, anyone
could make each API process hammer PostgreSQL, the broker, the key-value store and
storage as fast as they can send requests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, str]
    checked_at: datetime

    @property
    def ready(self) -> bool:
        return all(value == "ok" for value in self.checks.values())


@dataclass
class ReadinessCache:
    probe: Callable[[], dict[str, str]]
    max_age: float = 2.0
    _last: Readiness | None = None
    _last_at: float = 0.0
    # One probe at a time: callers arriving during it get the last answer, or, before
    # the first, wait for it.
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self) -> Readiness:
        """The last check if it is fresh; else a new one, unless one is running: then
        the last (while a slow service holds it up, callers do not pile up behind it)."""
        last = self._last
        if last is not None and time.monotonic() - self._last_at < self.max_age:
            return last
        if last is None:
            self._lock.acquire()
        elif not self._lock.acquire(blocking=False):
            return last
        try:
            now = time.monotonic()
            if self._last is None or now - self._last_at >= self.max_age:
                # Its age counts from when the check began.
                self._last = Readiness(self.probe(), datetime.now(UTC))
                self._last_at = now
            return self._last
        finally:
            self._lock.release()


def run_checks(checks: dict[str, Callable[[], Any]]) -> dict[str, str]:
    """Each check's outcome: "ok", or what was unavailable (the type, never details)."""
    outcome: dict[str, str] = {}
    for name, check in checks.items():
        try:
            check()
            outcome[name] = "ok"
        except Exception as exc:
            outcome[name] = f"unavailable ({type(exc).__name__})"
    return outcome
