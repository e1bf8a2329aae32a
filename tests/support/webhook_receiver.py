"""A webhook receiver for tests: a real HTTP server on loopback that verifies every
delivery with the `standardwebhooks` package (the reference implementation, not
Conveyor's code) and answers as the test scripts it.

It can be stopped and started again on the same port, to stand for a receiver that
was down for a while.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fastapi.testclient import TestClient
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass(frozen=True)
class Delivery:
    message_id: str
    timestamp: str
    signature: str
    body: dict[str, Any]
    # The secret (of `secrets`) that verified it; None if none did.
    verified_by: str | None
    status: int


@dataclass
class Receiver:
    # The secrets it accepts, as its owner configured them: any one verifying is enough.
    secrets: list[str] = field(default_factory=list)
    # The status to answer each request with, by arrival (then 200s).
    script: list[int] = field(default_factory=list)
    # Seconds to wait before answering, by arrival (then none).
    delays: list[float] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _arrivals: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                length = int(self.headers.get("content-length", "0"))
                raw = self.rfile.read(length)
                with receiver._lock:
                    index = receiver._arrivals
                    receiver._arrivals += 1
                delay = receiver.delays[index] if index < len(receiver.delays) else 0.0
                if delay:
                    time.sleep(delay)
                status = receiver.script[index] if index < len(receiver.script) else 200
                headers = {k.lower(): v for k, v in self.headers.items()}
                delivery = Delivery(
                    message_id=headers.get("webhook-id", ""),
                    timestamp=headers.get("webhook-timestamp", ""),
                    signature=headers.get("webhook-signature", ""),
                    body=json.loads(raw),
                    verified_by=receiver._verify(raw, headers),
                    status=status,
                )
                with receiver._lock:
                    receiver.deliveries.append(delivery)
                answer = f"answered {status}".encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "text/plain")
                    self.send_header("content-length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the sender gave up waiting (or was killed): nothing to answer

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _verify(self, raw: bytes, headers: dict[str, str]) -> str | None:
        for secret in self.secrets:
            try:
                Webhook(secret).verify(raw, headers)
            except WebhookVerificationError:
                continue
            return secret
        return None

    def subscribe(
        self, client: TestClient, headers: dict[str, str], events: list[str], **fields: Any
    ) -> dict[str, Any]:
        """A new endpoint of the caller's tenant pointing here, made over the API; its
        secret is one this receiver accepts from now on."""
        body = {"url": self.url, "events": events, **fields}
        response = client.post("/api/v1/webhooks", json=body, headers=headers)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        self.secrets.append(created["secret"])
        return created

    @property
    def arrivals(self) -> int:
        """Requests received, answered or not."""
        with self._lock:
            return self._arrivals

    def accepted(self) -> list[Delivery]:
        """The deliveries it answered 2xx, verified."""
        with self._lock:
            return [d for d in self.deliveries if 200 <= d.status < 300 and d.verified_by]

    def wait_for(
        self, check: Callable[[list[Delivery]], bool], timeout: float = 30.0
    ) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                seen = list(self.deliveries)
            if check(seen):
                return seen
            time.sleep(0.05)
        with self._lock:
            raise AssertionError(f"receiver: not as expected after {timeout} s: {self.deliveries}")
