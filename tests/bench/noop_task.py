"""The no-op task of the Celery baseline: its name and the key its last run stamps.
Shared by the publisher (celery_baseline.py) and the worker (noop_worker.py), which must
not import each other: the worker module builds a Celery app from the environment at
import."""

from __future__ import annotations

NOOP_TASK = "conveyor.bench.noop"


def noop_done_key(counter: str) -> str:
    return f"{counter}:done"
