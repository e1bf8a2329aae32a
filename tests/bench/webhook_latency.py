"""`make bench-webhooks`: from a job's end to its webhook's arrival (see options.py)."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from core.jobs.contracts import ECHO
from tests.bench.api_client import HTTP_TIMEOUT_SECONDS, api_url, expect, log_in, wait_ready
from tests.bench.autovacuum import autovacuum_on
from tests.bench.failures import BenchError, failures_explained
from tests.bench.options import WebhookOptions
from tests.bench.output import say
from tests.bench.s3 import storage_for_api
from tests.bench.stack import (
    LoggedGroup,
    Stack,
    api_argv,
    celery_beat_argv,
    celery_worker_argv,
    check_port_free,
)
from tests.bench.stats import percentile

LOG_DIR = Path(".conveyor") / "bench-webhooks"
WARMUP = 20
# Receivers on loopback; the submit limit lifted out of reach (still checked).
ENV = {"WEBHOOK_ALLOW_PRIVATE_TARGETS": "true", "TENANT_SUBMIT_LIMIT": str(10**9)}


class Receiver:
    """Notes when each verified event arrived (wall clock), by the job it is about."""

    def __init__(self) -> None:
        self.secret = ""
        self.arrived: dict[str, float] = {}
        self.finished_at: dict[str, float] = {}
        self.refused = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                raw = self.rfile.read(int(self.headers.get("content-length", "0")))
                at = time.time()
                try:
                    event = Webhook(receiver.secret).verify(raw, dict(self.headers.items()))
                except WebhookVerificationError:
                    receiver.refused += 1
                    self.send_response(400)
                else:
                    job_id = event["data"]["id"]
                    receiver.arrived.setdefault(job_id, at)
                    finished = datetime.fromisoformat(event["data"]["finished_at"])
                    receiver.finished_at[job_id] = finished.timestamp()
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def latencies(self, job_ids: list[str]) -> list[float]:
        return [self.arrived[j] - self.finished_at[j] for j in job_ids if j in self.arrived]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start(stack: Stack, opts: WebhookOptions, group: LoggedGroup) -> None:
    """The api, a job worker, a webhooks worker (prefork, as the Procfile's) and beat."""
    storage_for_api(group, opts.environment, stack.secret_key)
    group.start("api", api_argv(opts.port, 1))
    group.start("worker", celery_worker_argv("worker.app", "hooks-worker", 2, queues="default"))
    webhooks = celery_worker_argv("worker.app", "hooks", 4, queues="webhooks")
    group.start("webhooks", webhooks)
    group.start("beat", celery_beat_argv(stack.log_path / "celerybeat-schedule"))


async def submit_spaced(
    client: httpx.AsyncClient, receiver: Receiver, count: int, gap: float, timeout: float
) -> list[str]:
    """`count` jobs one at a time, `gap` apart; returns once every webhook arrived."""
    ids: list[str] = []
    for n in range(count):
        response = await client.post("/api/v1/jobs", json={"kind": ECHO, "input": {"n": n}})
        ids.append(expect(response, 202).json()["id"])
        await asyncio.sleep(gap)
    deadline = time.monotonic() + timeout
    while any(job_id not in receiver.arrived for job_id in ids):
        if time.monotonic() > deadline:
            missing = sum(job_id not in receiver.arrived for job_id in ids)
            raise BenchError(f"{missing} of {count} webhooks never arrived")
        await asyncio.sleep(0.05)
    return ids


async def run(opts: WebhookOptions, group: LoggedGroup, receiver: Receiver) -> list[str]:
    async with httpx.AsyncClient(
        base_url=api_url(opts.port), timeout=HTTP_TIMEOUT_SECONDS
    ) as client:
        await wait_ready(client, group)
        client.headers["Authorization"] = f"Bearer {await log_in(client)}"
        endpoint = expect(
            await client.post(
                "/api/v1/webhooks", json={"url": receiver.url, "events": ["job.succeeded"]}
            ),
            201,
        ).json()
        receiver.secret = endpoint["secret"]
        say(f"warming up with {WARMUP} jobs (includes worker start-up)")
        await submit_spaced(client, receiver, WARMUP, opts.gap, opts.timeout)
        say(f"timing {opts.jobs} jobs, one every {opts.gap:g} s")
        return await submit_spaced(client, receiver, opts.jobs, opts.gap, opts.timeout)


def main(opts: WebhookOptions) -> int:
    receiver = Receiver()
    stack = Stack.for_run(opts, LOG_DIR, ENV)
    try:
        with failures_explained("bench-webhooks", stack.groups) as outcome:
            check_port_free(opts.port)
            say(
                f"make bench-webhooks: {opts.jobs} jobs, {opts.gap:g} s apart, "
                f"environment {opts.environment}"
            )
            stack.say_where()
            with autovacuum_on(stack.servers.admin_engine()):
                stack.servers.prepare()
                with stack.group() as group:
                    start(stack, opts, group)
                    job_ids = asyncio.run(run(opts, group, receiver))
    finally:
        receiver.close()
    if outcome.code:
        return outcome.code
    latencies = receiver.latencies(job_ids)
    say(f"refused signatures: {receiver.refused}")
    say(
        f"webhook_latency_p50_s={percentile(latencies, 0.5):.3f} "
        f"webhook_latency_p95_s={percentile(latencies, 0.95):.3f} "
        f"webhook_latency_max_s={max(latencies):.3f} "
        f"delivered={len(latencies)}/{len(job_ids)}"
    )
    return 0
