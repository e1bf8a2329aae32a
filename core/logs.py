"""One logging setup for every process: plain lines on stderr, level from LOG_LEVEL."""

from __future__ import annotations

import logging
import os

_FORMAT = "%(asctime)s %(levelname)s [%(process_name)s] %(name)s: %(message)s"


def configure_logging(process_name: str) -> None:
    root = logging.getLogger()
    if getattr(root, "_conveyor_configured", False):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(_FORMAT, defaults={"process_name": process_name}))
    root.addHandler(handler)
    root.setLevel(os.environ.get("LOG_LEVEL", "INFO").upper())
    root._conveyor_configured = True  # type: ignore[attr-defined]
