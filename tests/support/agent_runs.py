"""A stand-in for what a running agent workflow reports to its job."""

from __future__ import annotations

from typing import Any

from core.jobs.states import EventType
from worker.errors import JobCancelled


class Recorder:
    """Events in a list; cancels at the checkpoint after `cancel_after` events."""

    def __init__(self, cancel_after: int | None = None) -> None:
        self.events: list[tuple[EventType, dict[str, Any]]] = []
        self.cancel_after = cancel_after

    def event(self, type_: EventType, data: dict[str, Any]) -> None:
        self.events.append((type_, data))

    def checkpoint(self, *, now: bool = False) -> None:
        if self.cancel_after is not None and len(self.events) >= self.cancel_after:
            raise JobCancelled("test")

    def kinds(self) -> list[str]:
        return [str(kind) for kind, _ in self.events]
