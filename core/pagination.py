"""Opaque cursors for newest-first listings ordered by (created_at, id)."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime

from core.errors import ConveyorError, ErrorCode


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, row_id = json.loads(raw)
        return datetime.fromisoformat(created), uuid.UUID(row_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ConveyorError(
            ErrorCode.VALIDATION_FAILED,
            "The cursor is not valid",
            errors=[{"field": "cursor", "message": "not a cursor returned by this API"}],
        ) from exc
