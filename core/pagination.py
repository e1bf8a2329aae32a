"""Opaque cursors for newest-first listings ordered by (created_at, id)."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import UTC, datetime

from core.errors import ConveyorError, ErrorCode


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# No row is older than this; anything outside the range is not one of our cursors,
# and some of it PostgreSQL cannot even compare (a year-1 time with a -23:59 offset).
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The (created_at, id) a cursor holds; a 422 for anything this API did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, row_id = json.loads(raw)
        at = datetime.fromisoformat(created)
        if at.tzinfo is None:
            raise ValueError("a cursor's time has an offset")
        at = at.astimezone(UTC)
        if not _EARLIEST <= at < _LATEST:
            raise ValueError("a cursor's time is within the range of rows")
        return at, uuid.UUID(row_id)
    except (binascii.Error, ValueError, TypeError, OverflowError) as exc:
        raise ConveyorError(
            ErrorCode.VALIDATION_FAILED,
            "The cursor is not valid",
            errors=[{"field": "cursor", "message": "not a cursor returned by this API"}],
        ) from exc
