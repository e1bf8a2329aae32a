"""Redaction of credentials from uvicorn's access log.

A presigned upload URL carries its signature in the query string
(`PUT /api/v1/uploads/<id>/data?expires=…&signature=…`): logged as it is, anyone who
reads the logs could use it until it expires.
"""

from __future__ import annotations

import logging
import re

# Query parameters that are credentials, in any case.
_SECRET_PARAMS = re.compile(
    r"(?i)([?&](?:signature|token|access_token|code|x-amz-signature|x-amz-credential"
    r"|x-amz-security-token)=)[^&#\s]*"
)
REDACTED = "[redacted]"


def redact_query(path: str) -> str:
    return _SECRET_PARAMS.sub(lambda m: m.group(1) + REDACTED, path)


class RedactCredentials(logging.Filter):
    """For uvicorn.access records, whose args are (client, method, path, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        return True


def install() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactCredentials) for f in access.filters):
        access.addFilter(RedactCredentials())
