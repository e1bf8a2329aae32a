"""Pure ASGI middleware: request ids, security headers, the body-size limit, and the
last-resort 500.

It sits outside FastAPI's exception handling, so an unexpected exception still
becomes a problem+json 500 carrying `X-Request-ID`, with no stack trace to the client.
"""

from __future__ import annotations

import json
import logging
import re
import uuid

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import PROBLEM_JSON, problem_body
from core.errors import ErrorCode
from core.logs import log_context

log = logging.getLogger("conveyor.api")

_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

# On every answer: no MIME sniffing, never framed (the /docs pages included).
_SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
)
# Answers carry tokens, secrets and tenants' data: no cache keeps them unless a route
# says otherwise (the docs' static assets, which are the same for everyone).
_NO_STORE = (b"cache-control", b"no-store")
_CACHEABLE_PREFIXES = ("/static-offline-docs/",)


class _BodyTooLarge(StarletteHTTPException):
    """Raised from `receive`; an HTTPException so the body parser lets it through."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The body may be at most {limit} bytes")


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        upload_body_bytes: int,
        upload_paths: re.Pattern[str],
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # File uploads stream to storage, so their bodies may be far larger.
        self.upload_body_bytes = upload_body_bytes
        self.upload_paths = upload_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = self._request_id(scope)
        upload = scope["method"] in ("POST", "PUT") and self.upload_paths.match(scope["path"])
        limit = self.upload_body_bytes if upload else self.max_body_bytes
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        cacheable = scope["path"].startswith(_CACHEABLE_PREFIXES)

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                present = {name.lower() for name, _ in headers}
                headers += [h for h in _SECURITY_HEADERS if h[0] not in present]
                if not cacheable and b"cache-control" not in present:
                    headers.append(_NO_STORE)
                message["headers"] = headers
            await send(message)

        async def send_problem(error: ErrorCode, detail: str | None = None) -> None:
            body = json.dumps(
                problem_body(error, detail=detail, instance=scope["path"], request_id=request_id)
            ).encode()
            await send_with_id(
                {
                    "type": "http.response.start",
                    "status": error.http_status,
                    "headers": [
                        (b"content-type", PROBLEM_JSON.encode()),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send_with_id({"type": "http.response.body", "body": body})

        declared = self._content_length(scope)
        if declared is not None and declared > limit:
            await send_problem(
                ErrorCode.PAYLOAD_TOO_LARGE, f"The body may be at most {limit} bytes"
            )
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(limit)
            return message

        try:
            with log_context(request_id=request_id):  # on every line logged for it
                await self.app(scope, limited_receive, send_with_id)
        except _BodyTooLarge:
            if not started:
                await send_problem(
                    ErrorCode.PAYLOAD_TOO_LARGE,
                    f"The body may be at most {limit} bytes",
                )
        except Exception:
            log.exception("unhandled error", extra={"request_id": request_id})
            if not started:
                await send_problem(
                    ErrorCode.INTERNAL, f"Something went wrong; quote request id {request_id}"
                )

    @staticmethod
    def _request_id(scope: Scope) -> str:
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                candidate: str = value.decode("latin-1")
                if _CLIENT_REQUEST_ID.match(candidate):
                    return candidate
        return uuid.uuid4().hex

    @staticmethod
    def _content_length(scope: Scope) -> int | None:
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return None
        return None
