from __future__ import annotations

import logging

from api.access_log import REDACTED, RedactCredentials, redact_query

# The format and arguments of uvicorn.access records.
ACCESS_FORMAT = '%s - "%s %s HTTP/%s" %d'


def test_a_presigned_upload_url_is_logged_without_its_signature() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        ACCESS_FORMAT,
        (
            "127.0.0.1:5000",
            "PUT",
            "/api/v1/uploads/1b2c/data?expires=1765000000&signature=abcdef0123",
            "1.1",
            200,
        ),
        None,
    )

    assert RedactCredentials().filter(record)

    line = record.getMessage()
    assert "abcdef0123" not in line
    assert f"signature={REDACTED}" in line
    assert "expires=1765000000" in line


def test_only_credential_parameters_are_redacted() -> None:
    assert redact_query("/api/v1/jobs?limit=5&cursor=abc") == "/api/v1/jobs?limit=5&cursor=abc"
    assert redact_query("/x?X-Amz-Signature=s&X-Amz-Credential=c&a=1") == (
        f"/x?X-Amz-Signature={REDACTED}&X-Amz-Credential={REDACTED}&a=1"
    )
    assert redact_query("/x?Token=t#frag") == f"/x?Token={REDACTED}#frag"
