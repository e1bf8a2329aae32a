"""What a failed model call or run means for the job: worth another attempt (rate
limits, 5xx, timeouts, lost connections), or a failure no retry can fix."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping

import openai
from agents import MaxTurnsExceeded, ModelBehaviorError, ModelRefusalError, ModelTimeoutError

from worker.errors import PermanentJobError, TransientJobError

MAX_RETRY_AFTER_SECONDS = 600.0
MESSAGE_CHARS = 300


def run_failure(exc: Exception, max_turns: int) -> Exception | None:
    """The job error for `exc`, or None when it is not a model or run failure."""
    if isinstance(exc, openai.RateLimitError):
        if exc.code == "insufficient_quota":
            return PermanentJobError(
                "The OpenAI account is out of quota (429 insufficient_quota)",
                type="model_quota_exhausted",
            )
        return TransientJobError(
            "The model server's rate limit was reached (429)",
            retry_after=retry_after(exc.response.headers),
        )
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status >= 500 or status in (408, 409):
            return TransientJobError(
                f"The model server answered {status}", retry_after=retry_after(exc.response.headers)
            )
        if status in (401, 403):
            # The server's message may echo part of the key: not repeated.
            return PermanentJobError(
                f"The model server refused the credentials ({status}); check OPENAI_API_KEY",
                type="model_auth_failed",
            )
        return PermanentJobError(
            f"The model server refused the request ({status}): {_message(exc)}",
            type="model_request_rejected",
        )
    if isinstance(exc, openai.APITimeoutError | ModelTimeoutError):
        return TransientJobError("The model server did not answer in time")
    if isinstance(exc, openai.APIConnectionError):
        return TransientJobError("Could not reach the model server")
    if isinstance(exc, MaxTurnsExceeded):
        return PermanentJobError(
            f"The run took more than {max_turns} model turns (AGENT_MAX_TURNS)",
            type="max_turns_exceeded",
        )
    if isinstance(exc, ModelRefusalError):
        return PermanentJobError(
            f"The model refused: {exc.refusal[:MESSAGE_CHARS]}", type="model_refused"
        )
    if isinstance(exc, ModelBehaviorError):
        return PermanentJobError(
            f"The model's answer could not be used: {exc.message[:MESSAGE_CHARS]}",
            type="invalid_model_output",
        )
    if isinstance(exc, openai.OpenAIError):
        # A body the client could not read (APIResponseValidationError), a client setup
        # error: the same request would meet the same answer.
        return PermanentJobError(
            f"The model server's answer could not be read ({type(exc).__name__})",
            type="model_response_invalid",
        )
    return None


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        text = str(body["message"])
    else:
        text = exc.message
    return " ".join(text.split())[:MESSAGE_CHARS]


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked to wait (`retry-after-ms`, `retry-after` in seconds or as
    an HTTP date), capped so a bad header cannot park a job for days."""
    seconds: float | None = None
    try:
        if "retry-after-ms" in headers:
            seconds = float(headers["retry-after-ms"]) / 1000
        elif "retry-after" in headers:
            raw = headers["retry-after"]
            try:
                seconds = float(raw)
            except ValueError:
                when = email.utils.parsedate_to_datetime(raw)
                seconds = when.timestamp() - time.time()
    except (ValueError, TypeError):
        return None
    if seconds is None or seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)
