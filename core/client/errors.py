"""The one exception the client raises for a request that did not do what was asked."""

from __future__ import annotations

from typing import Any

import httpx

PROBLEM_JSON = "application/problem+json"
# A request that got no answer at all (refused, reset, timed out): status 0.
UNREACHABLE = "unreachable"
# An answer that is not the API's problem+json, such as a proxy's HTML error page.
UNEXPECTED_RESPONSE = "unexpected_response"


class APIError(Exception):
    """A problem+json answer, with its stable `code` (docs/errors.md), `status` and
    `detail`; or no answer (`status` 0, `code` "unreachable"). Branch on `code`."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        problem: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{code} ({status}): {detail}" if status else f"{code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        # The whole body: `request_id`, and fields some codes add (`errors`, `max_bytes`).
        self.problem = problem or {}
        self.retry_after = retry_after

    @property
    def request_id(self) -> str | None:
        value = self.problem.get("request_id")
        return value if isinstance(value, str) else None


def failed_request(exc: httpx.RequestError) -> APIError:
    """A request that got no usable answer: no connection (`unreachable`), or an answer
    httpx could not read (too many redirects, a bad encoding)."""
    code = UNREACHABLE if isinstance(exc, httpx.TransportError) else UNEXPECTED_RESPONSE
    return APIError(0, code, f"{type(exc).__name__}: {exc}" if str(exc) else repr(exc))


def from_response(response: httpx.Response) -> APIError:
    """The error an answer of 400 or more stands for. The body must have been read."""
    retry_after = _seconds(response.headers.get("retry-after"))
    problem: Any = None
    if response.headers.get("content-type", "").startswith(("application/json", PROBLEM_JSON)):
        try:
            problem = response.json()
        except ValueError:
            problem = None
    if isinstance(problem, dict) and isinstance(problem.get("code"), str):
        detail = problem.get("detail") or problem.get("title") or response.reason_phrase
        return APIError(response.status_code, problem["code"], str(detail), problem, retry_after)
    return APIError(
        response.status_code,
        UNEXPECTED_RESPONSE,
        f"HTTP {response.status_code} {response.reason_phrase}: {response.text[:200]}",
        retry_after=retry_after,
    )


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
