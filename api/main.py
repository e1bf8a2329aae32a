"""The ASGI entry point: `uvicorn api.main:app`."""

import sys

from api.app import create_app
from core.settings import ConfigurationError

try:
    app = create_app()
except ConfigurationError as exc:
    # One clear line instead of a traceback: this is an operator's mistake, not a bug.
    sys.exit(f"conveyor api: {exc}")
