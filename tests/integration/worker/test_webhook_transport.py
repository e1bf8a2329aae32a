"""The delivering side's refusals, over real connections to a local server: an address
checked when connecting, no redirects followed, a capped answer, a bounded wait."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from worker.jobs.webhooks_deliver import transport
from worker.jobs.webhooks_deliver.transport import MAX_ANSWER_BYTES, TargetRefused


class Server:
    """Answers each POST as `answer` says and counts them, by path."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.mode = "ok"
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                self.rfile.read(int(self.headers.get("content-length", "0")))
                server.hits.append(self.path)
                if server.mode == "redirect":
                    self.send_response(307)
                    self.send_header("location", "/elsewhere")
                    self.send_header("content-length", "0")
                    self.end_headers()
                elif server.mode == "huge":
                    self.send_response(200)
                    self.send_header("content-length", str(10 * 1024 * 1024))
                    self.end_headers()
                    chunk = b"x" * 65536
                    try:
                        for _ in range(160):
                            self.wfile.write(chunk)
                    except OSError:
                        pass  # the client stopped reading, as it should
                elif server.mode == "trickle":
                    # The status line, then the headers a byte every 0.2 s: each read
                    # gets something well within any per-read timeout.
                    for byte in b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nx-slow: " + b"y" * 30:
                        try:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                        except OSError:
                            return
                        time.sleep(0.2)
                elif server.mode == "nul":
                    self.send_response(500)
                    answer = b"bad\x00answer\xff"
                    self.send_header("content-length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                elif server.mode == "slow":
                    time.sleep(3)
                    self.send_response(200)
                    self.send_header("content-length", "0")
                    self.end_headers()
                else:
                    self.send_response(204)
                    self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/hook"


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.httpd.shutdown()
    running.httpd.server_close()


def post(url: str, *, allow_private: bool = True, timeout: float = 5.0) -> Any:
    return transport.post(
        url,
        {"webhook-id": "msg_1"},
        b"{}",
        allow_private=allow_private,
        connect_timeout=2,
        timeout=timeout,
    )


def test_a_delivery_reaches_an_allowed_address(server: Server) -> None:
    answer = post(server.url("localhost"))
    assert answer.status_code == 204
    assert answer.ok
    assert server.hits == ["/hook"]


def test_an_address_refused_when_connecting_is_never_connected_to(server: Server) -> None:
    # The URL passed the check once (private targets allowed then); now they are not.
    for host in ("127.0.0.1", "localhost"):
        with pytest.raises(TargetRefused, match="loopback or private"):
            post(server.url(host), allow_private=False)
    assert server.hits == []


def test_a_redirect_is_an_answer_not_followed(server: Server) -> None:
    server.mode = "redirect"
    answer = post(server.url())
    assert answer.status_code == 307
    assert not answer.ok
    assert server.hits == ["/hook"]


def test_a_huge_answer_is_read_only_so_far(server: Server) -> None:
    server.mode = "huge"
    answer = post(server.url())
    assert answer.status_code == 200
    assert answer.excerpt == "x" * 1024
    assert MAX_ANSWER_BYTES < 10 * 1024 * 1024


def test_a_receiver_slower_than_the_timeout_is_given_up_on(server: Server) -> None:
    server.mode = "slow"
    started = time.monotonic()
    answer = post(server.url(), timeout=0.5)
    assert answer.status_code is None
    assert answer.error == "timed out waiting"
    assert time.monotonic() - started < 2.5


def test_nothing_listening_is_a_connection_error() -> None:
    answer = post("http://127.0.0.1:9/hook")
    assert answer.status_code is None
    assert answer.error is not None
    assert answer.error.startswith("could not connect")


def test_a_receiver_that_trickles_its_answer_is_cut_off_at_the_deadline(server: Server) -> None:
    server.mode = "trickle"
    started = time.monotonic()
    answer = post(server.url(), timeout=1.0)
    assert answer.status_code is None
    assert answer.error == "timed out waiting"
    assert time.monotonic() - started < 3.0


def test_an_answer_with_nul_bytes_is_kept_as_text_postgresql_stores(server: Server) -> None:
    server.mode = "nul"
    answer = post(server.url())
    assert answer.status_code == 500
    assert answer.excerpt == "bad\ufffdanswer\ufffd"
