"""Handlers found by walking `worker.jobs`: each sub-package's `handler` module names
its `KIND` and defines `handle(ctx, input)`. No hand-kept import list."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

import worker.jobs
from core.jobs.contracts import KINDS
from worker.context import JobContext

Handler = Callable[[JobContext, Any], BaseModel | dict[str, Any]]


def discover_handlers() -> dict[str, Handler]:
    handlers: dict[str, Handler] = {}
    for info in pkgutil.iter_modules(worker.jobs.__path__):
        if not info.ispkg:
            continue
        module = importlib.import_module(f"worker.jobs.{info.name}.handler")
        kind: str = module.KIND
        if kind not in KINDS:
            raise RuntimeError(
                f"worker/jobs/{info.name} handles {kind!r}, which has no "
                "contract in core/jobs/contracts.py"
            )
        if kind in handlers:
            raise RuntimeError(f"two handlers for {kind!r}")
        handlers[kind] = module.handle
    missing = set(KINDS) - set(handlers)
    if missing:
        raise RuntimeError(f"job kinds without a handler: {sorted(missing)}")
    return handlers
