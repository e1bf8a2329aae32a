from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from core.errors import ConveyorError, ErrorCode
from core.pagination import decode_cursor, encode_cursor

# A fixed id: the cursors are test ids, which must be the same in every pytest-xdist worker.
ROW_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")


def _cursor(created: object, row_id: object = None) -> str:
    raw = json.dumps([created, str(row_id or ROW_ID)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_a_cursor_the_api_made_comes_back_as_it_went() -> None:
    at = datetime(2026, 12, 6, 18, 30, 1, 123456, tzinfo=UTC)
    row_id = uuid.uuid4()
    assert decode_cursor(encode_cursor(at, row_id)) == (at, row_id)


def test_a_cursor_in_another_offset_is_read_in_utc() -> None:
    at = datetime(2026, 12, 6, 20, 0, tzinfo=timezone(timedelta(hours=2)))
    decoded, _ = decode_cursor(_cursor(at.isoformat()))
    assert decoded == at
    assert decoded.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "cursor",
    [
        # PostgreSQL refuses to compare these: "time zone displacement out of range".
        _cursor("0001-01-01T00:00:00-23:59"),
        _cursor("0001-01-01T00:00:00+23:59"),
        _cursor("9999-12-31T23:59:59-23:59"),
        # No offset: compared as local time, a different row than the one meant.
        _cursor("2026-12-06T18:30:00"),
        _cursor("2026-12-06T18:30:00+00:00", "not-a-uuid"),
        _cursor(12345),
        base64.urlsafe_b64encode(b'{"a": 1}').decode(),
        "%%%",
        "",
    ],
)
def test_a_cursor_the_api_did_not_make_is_a_validation_error(cursor: str) -> None:
    with pytest.raises(ConveyorError) as raised:
        decode_cursor(cursor)
    assert raised.value.error is ErrorCode.VALIDATION_FAILED
