from __future__ import annotations

import httpx

from core.client.errors import from_response


def test_a_problem_answer_becomes_its_code_status_and_detail() -> None:
    body = {"code": "submit_rate_exceeded", "detail": "Slow down", "request_id": "r1"}
    answer = httpx.Response(
        429,
        json=body,
        headers={"content-type": "application/problem+json", "retry-after": "3"},
    )
    error = from_response(answer)
    assert (error.status, error.code, error.detail) == (429, "submit_rate_exceeded", "Slow down")
    assert error.retry_after == 3
    assert error.request_id == "r1"
    assert error.problem == body


def test_an_answer_that_is_not_a_problem_says_what_it_was() -> None:
    error = from_response(httpx.Response(502, text="<html>Bad gateway</html>"))
    assert (error.status, error.code) == (502, "unexpected_response")
    assert "Bad gateway" in error.detail
