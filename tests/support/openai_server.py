"""A real OpenAI-compatible HTTP server for tests, on 127.0.0.1 and a free port.

It answers `POST /v1/chat/completions` and `POST /v1/responses` (non-streaming) with
scripted replies, so a worker in another OS process can be pointed at it with
`OPENAI_BASE_URL=<server.base_url>` and exercise the real `openai` client and Agents SDK:
tool calls, structured output, handoffs, rate limits and auth failures, slow models.

    with OpenAIServer() as server:
        server.script(tool_call("add", {"a": 1, "b": 2}), text("3"))
        ...  # run the worker with OPENAI_BASE_URL=server.base_url
        assert server.remaining == 0

Only the standard library serves; the bodies are plain dicts shaped like the real API's,
complete enough that `openai.types` models validate them.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

CHAT_PATH = "/v1/chat/completions"
RESPONSES_PATH = "/v1/responses"

# One process-wide counter for every generated id, so ids never repeat across servers.
_ids = itertools.count(1)
_ids_lock = threading.Lock()


def _next_id() -> int:
    with _ids_lock:
        return next(_ids)


def _new_call_id() -> str:
    return f"call_{_next_id()}"


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]
    call_id: str = field(default_factory=_new_call_id)


@dataclass(frozen=True)
class Reply:
    """One scripted answer to one model request."""

    text: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    # Non-200: an OpenAI-style error body {"error": {"message", "type", "code"}}.
    status: int = 200
    error_message: str = "scripted error"
    # Extra response headers, e.g. {"Retry-After": "1"}.
    headers: dict[str, str] = field(default_factory=dict)
    # Sleep before answering: a slow model, for timeouts and cancellation.
    delay_seconds: float = 0.0
    input_tokens: int = 11
    output_tokens: int = 7


def text(content: str, **kw: Any) -> Reply:
    """An assistant message; `kw` sets any other `Reply` field (delay, tokens, headers)."""
    return Reply(text=content, **kw)


def tool_call(
    name: str, arguments: dict[str, Any], *, call_id: str | None = None, **kw: Any
) -> Reply:
    """One tool call and no text: the model asking to run `name(**arguments)`."""
    call = ToolCall(name, arguments) if call_id is None else ToolCall(name, arguments, call_id)
    return Reply(tool_calls=(call,), **kw)


def error(
    status: int, *, retry_after: float | None = None, message: str = "scripted error"
) -> Reply:
    """An error answer; `retry_after` (seconds) becomes the `Retry-After` header."""
    headers: dict[str, str] = {}
    if retry_after is not None:
        # Whole seconds as "1", not "1.0": what real servers send and tests compare against.
        seconds = int(retry_after) if float(retry_after).is_integer() else retry_after
        headers["Retry-After"] = str(seconds)
    return Reply(status=status, error_message=message, headers=headers)


@dataclass(frozen=True)
class Recorded:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: dict[str, Any]
    answered_status: int


# The `type` and `code` the real API pairs with each status, so client code that branches
# on them (or on the exception class the `openai` client picks by status) sees the real thing.
_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "not_found"),
    409: ("invalid_request_error", "conflict"),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}


def _error_body(status: int, message: str) -> dict[str, Any]:
    kind, code = _ERROR_KINDS.get(status, ("server_error" if status >= 500 else "error", None))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _usage_numbers(reply: Reply) -> tuple[int, int, int]:
    return reply.input_tokens, reply.output_tokens, reply.input_tokens + reply.output_tokens


def _chat_completion(request: dict[str, Any], reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for call in reply.tool_calls
        ]
    prompt, completion, total = _usage_numbers(reply)
    return {
        "id": f"chatcmpl-{_next_id()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(request.get("model", "test-model")),
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if reply.tool_calls else "stop",
            }
        ],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total},
    }


def _response(request: dict[str, Any], reply: Reply) -> dict[str, Any]:
    output: list[dict[str, Any]] = []
    if reply.text is not None:
        output.append(
            {
                "type": "message",
                "id": f"msg_{_next_id()}",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
            }
        )
    output.extend(
        {
            "type": "function_call",
            "id": f"fc_{_next_id()}",
            "call_id": call.call_id,
            "name": call.name,
            "arguments": json.dumps(call.arguments),
            "status": "completed",
        }
        for call in reply.tool_calls
    )
    input_tokens, output_tokens, total = _usage_numbers(reply)
    now = int(time.time())
    tools = request.get("tools")
    return {
        "id": f"resp_{_next_id()}",
        "object": "response",
        "created_at": now,
        "completed_at": now,
        "model": str(request.get("model", "test-model")),
        "status": "completed",
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "metadata": {},
        "output": output,
        # Echo the request's settings, as the real API does; these three are required.
        "parallel_tool_calls": bool(request.get("parallel_tool_calls", True)),
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": tools if isinstance(tools, list) else [],
        "previous_response_id": request.get("previous_response_id"),
        "usage": {
            "input_tokens": input_tokens,
            # `cache_write_tokens` is required by openai's `InputTokensDetails` model.
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": total,
        },
    }


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: OpenAIServer


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 so the client's connection pool keeps connections alive, as with the real API.
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.request)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass  # the client went away; nothing left to flush
        finally:
            self.server.owner._untrack(self.request)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean; `OpenAIServer.requests` is the log

    def do_GET(self) -> None:
        self._discard_body()
        self._answer_error(404, f"Unknown path: GET {self.path}")

    def do_POST(self) -> None:
        raw = self._discard_body()
        path = self.path.split("?", 1)[0]
        headers = {name.lower(): value for name, value in self.headers.items()}
        owner = self.server.owner
        try:
            parsed = json.loads(raw or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            owner._record(Recorded(path, headers, {}, 400), None)
            self._answer_error(400, f"Could not parse the JSON body: {exc}")
            return
        if not isinstance(parsed, dict):
            owner._record(Recorded(path, headers, {}, 400), None)
            self._answer_error(400, "The request body must be a JSON object.")
            return
        body: dict[str, Any] = parsed
        if path not in (CHAT_PATH, RESPONSES_PATH):
            owner._record(Recorded(path, headers, body, 404), None)
            self._answer_error(404, f"Unknown path: POST {path}")
            return
        if body.get("stream"):
            # Refused before popping, so the scripted reply stays queued for a fixed client.
            owner._record(Recorded(path, headers, body, 400), None)
            self._answer_error(400, "Streaming is not supported by the test OpenAI server.")
            return

        reply = owner._pop()
        if reply is None:
            owner._record(Recorded(path, headers, body, 500), None)
            # x-should-retry: false, or the client would retry into the same empty script.
            self._answer_error(
                500,
                f"The test OpenAI server's script is exhausted: no reply left for POST {path}.",
                {"x-should-retry": "false"},
            )
            return
        # Recorded before the delay, so a test whose client timed out still sees the request.
        owner._record(Recorded(path, headers, body, reply.status), reply)
        if reply.delay_seconds > 0:
            time.sleep(reply.delay_seconds)
        if reply.status != 200:
            self._answer_error(reply.status, reply.error_message, reply.headers)
            return
        payload = _chat_completion(body, reply) if path == CHAT_PATH else _response(body, reply)
        self._answer(200, payload, reply.headers)

    def _discard_body(self) -> bytes:
        """Read the whole body, so the connection is clean for the next keep-alive request."""
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _answer_error(
        self, status: int, message: str, headers: dict[str, str] | None = None
    ) -> None:
        self._answer(status, _error_body(status, message), headers or {})

    def _answer(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-request-id", f"req_{_next_id()}")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (e.g. its timeout during `delay_seconds`): not our failure.
            self.close_connection = True


class OpenAIServer:
    """Use as a context manager, or `start()`/`stop()`; `base_url` is set once started."""

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.base_url = ""
        self._lock = threading.Lock()
        self._pending: list[Reply] = []
        self._log: list[tuple[Recorded, Reply | None]] = []
        self._connections: set[socket.socket] = set()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> OpenAIServer:
        if self._httpd is not None:
            return self
        httpd = _HTTPServer((self.host, 0), _Handler)
        httpd.owner = self
        port = httpd.server_address[1]
        self.base_url = f"http://{self.host}:{port}/v1"
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, name=f"openai-server-{port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        # Cut keep-alive connections too, or a pooled client would keep being answered
        # by a "stopped" server.
        with self._lock:
            connections = list(self._connections)
            self._connections.clear()
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def script(self, *replies: Reply) -> None:
        """Replace the pending replies and forget earlier requests (and their usage)."""
        with self._lock:
            self._pending = list(replies)
            self._log.clear()

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return [recorded for recorded, _ in self._log]

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self._pending)

    def usage_totals(self) -> dict[str, int]:
        """Token usage over the 200 replies served since the last `script()`.

        A reply counts once it is taken for a request, even if the client disconnected
        during its delay (the real API bills those too).
        """
        with self._lock:
            served = [reply for _, reply in self._log if reply is not None and reply.status == 200]
        input_tokens = sum(reply.input_tokens for reply in served)
        output_tokens = sum(reply.output_tokens for reply in served)
        return {
            "requests": len(served),
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        }

    # Called from handler threads.

    def _pop(self) -> Reply | None:
        with self._lock:
            return self._pending.pop(0) if self._pending else None

    def _record(self, recorded: Recorded, reply: Reply | None) -> None:
        with self._lock:
            self._log.append((recorded, reply))

    def _track(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.add(conn)

    def _untrack(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)
