"""One logging setup for every process: lines on stderr, level from LOG_LEVEL, format
from LOG_FORMAT (`text`, the default, or `json`: one object per line).

Lines about a job carry its `job_id`, `kind`, `tenant_id`, `attempt`, and the
`request_id` of the request that submitted it; an API request's lines carry its
`request_id`. Code binds them once (`log_context`, `bind`) and every line logged under
them gets them, Celery's own lines about the task included. In JSON they are fields; in
text they follow the message.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any

_FORMAT = "%(asctime)s %(levelname)s [%(process_name)s] %(name)s: %(message)s"
# The fields a line may carry, in the order they are written.
FIELDS = ("job_id", "kind", "tenant_id", "attempt", "request_id")

_context: ContextVar[dict[str, Any]] = ContextVar("conveyor_log_context", default={})  # noqa: B039 - never mutated


def bind(*, fresh: bool = False, **fields: Any) -> Token[dict[str, Any]]:
    """Add fields to every line logged from here in this context (thread, task); `None`
    values are left out. `fresh`: these fields only, none bound before. Undo with
    `unbind(token)`."""
    bound = {} if fresh else _context.get()
    return _context.set({**bound, **{k: v for k, v in fields.items() if v is not None}})


def unbind(token: Token[dict[str, Any]]) -> None:
    _context.reset(token)


def current_request_id() -> str | None:
    """The id of the API request this code runs for, if any."""
    found = _context.get().get("request_id")
    return None if found is None else str(found)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    token = bind(**fields)
    try:
        yield
    finally:
        unbind(token)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _context.get().items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        # Celery's lines about a task name it in `data` (the task id is the job id).
        data = getattr(record, "data", None)
        if isinstance(data, dict) and getattr(record, "job_id", None) is None:
            record.job_id = data.get("id")
            task = data.get("name")
            if isinstance(task, str) and task.endswith(".run"):
                record.kind = task.removesuffix(".run")
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, process_name: str) -> None:
        super().__init__()
        self.process_name = process_name

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "process": self.process_name,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value if isinstance(value, int) else str(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = [(name, getattr(record, name, None)) for name in FIELDS]
        bound = " ".join(f"{name}={value}" for name, value in fields if value is not None)
        return f"{text} [{bound}]" if bound else text


def configure_logging(process_name: str) -> None:
    root = logging.getLogger()
    if getattr(root, "_conveyor_configured", False):
        return
    handler = logging.StreamHandler()
    if os.environ.get("LOG_FORMAT", "text").lower() == "json":
        handler.setFormatter(JsonFormatter(process_name))
        # uvicorn's lines (its access log included) through this handler too, not in
        # uvicorn's own text format.
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            logger = logging.getLogger(name)
            logger.handlers.clear()
            logger.propagate = True
    else:
        handler.setFormatter(TextFormatter(_FORMAT, defaults={"process_name": process_name}))
    handler.addFilter(ContextFilter())
    root.addHandler(handler)
    root.setLevel(os.environ.get("LOG_LEVEL", "INFO").upper())
    root._conveyor_configured = True  # type: ignore[attr-defined]
