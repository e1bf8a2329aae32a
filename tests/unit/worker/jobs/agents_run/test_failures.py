"""How a failed model call becomes a job error: retried after what the server asks, or
not at all."""

from __future__ import annotations

import email.utils
import time

import httpx2
import openai
import pytest

from worker.errors import PermanentJobError, TransientJobError
from worker.jobs.agents_run.failures import MAX_RETRY_AFTER_SECONDS, retry_after, run_failure


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": "999999"}, MAX_RETRY_AFTER_SECONDS),
        ({"retry-after": "-4"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "nan"}, None),
        ({}, None),
    ],
)
def test_retry_after_is_read_and_bounded(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after(headers) == seconds


def test_retry_after_as_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    waited = retry_after({"retry-after": when})
    assert waited is not None
    assert 25 <= waited <= 31


def test_an_exhausted_quota_is_not_retried() -> None:
    request = httpx2.Request("POST", "http://model.test/v1/responses")
    response = httpx2.Response(429, request=request, headers={"retry-after": "5"})
    quota = openai.RateLimitError(
        "quota", response=response, body={"code": "insufficient_quota", "message": "quota"}
    )
    failure = run_failure(quota, 10)
    assert isinstance(failure, PermanentJobError)
    assert failure.type == "model_quota_exhausted"
    limited = openai.RateLimitError("slow down", response=response, body={"code": None})
    assert isinstance(run_failure(limited, 10), TransientJobError)
