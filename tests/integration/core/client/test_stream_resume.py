"""A followed job whose API is killed and restarted mid-stream: the client reconnects
with Last-Event-ID, and what it yields is the job's whole event log, once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from core.client import APIError, AsyncClient, Client, JobEvent
from tests.support.api_server import RestartableApi
from tests.support.factories import User
from tests.support.worker import WorkerProcess


class Sent(httpx.HTTPTransport):
    """Notes the Last-Event-ID of every request it sends."""

    def __init__(self, resumed_from: list[str]) -> None:
        super().__init__()
        self.resumed_from = resumed_from

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if "last-event-id" in request.headers:
            self.resumed_from.append(request.headers["last-event-id"])
        return super().handle_request(request)


class AsyncSent(httpx.AsyncHTTPTransport):
    def __init__(self, resumed_from: list[str]) -> None:
        super().__init__()
        self.resumed_from = resumed_from

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if "last-event-id" in request.headers:
            self.resumed_from.append(request.headers["last-event-id"])
        return await super().handle_async_request(request)


class Restarts(RestartableApi):
    """Cut once, after the first progress event: noting the last event seen then, and
    the Last-Event-ID of every (re)connection."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        super().__init__(env, log_dir)
        self.cut_after: int | None = None
        self.resumed_from: list[str] = []

    def cut(self, seen: int) -> None:
        self.cut_after = seen
        self.restart()


def _follow_sync(
    restarts: Restarts, token: str, job_id: str, retries: list[APIError]
) -> list[JobEvent]:
    seen: list[JobEvent] = []
    with Client(restarts.url, token=token, transport=Sent(restarts.resumed_from)) as client:
        for event in client.jobs.stream(job_id, on_retry=lambda error, _: retries.append(error)):
            seen.append(event)
            if event.type == "progress" and restarts.restarts == 0:
                restarts.cut(event.seq)
    return seen


def _follow_async(
    restarts: Restarts, token: str, job_id: str, retries: list[APIError]
) -> list[JobEvent]:
    async def follow() -> list[JobEvent]:
        seen: list[JobEvent] = []
        sent = AsyncSent(restarts.resumed_from)
        async with AsyncClient(restarts.url, token=token, transport=sent) as client:
            stream = client.jobs.stream(job_id, on_retry=lambda error, _: retries.append(error))
            async for event in stream:
                seen.append(event)
                if event.type == "progress" and restarts.restarts == 0:
                    await asyncio.to_thread(restarts.cut, event.seq)
        return seen

    return asyncio.run(follow())


@pytest.mark.parametrize("follow", [_follow_sync, _follow_async], ids=["sync", "async"])
def test_a_stream_cut_by_an_api_restart_resumes_where_it_stopped(
    follow: Callable[[Restarts, str, str, list[APIError]], list[JobEvent]],
    api_env: dict[str, str],
    tmp_path: Path,
    user: User,
    worker: WorkerProcess,
) -> None:
    restarts = Restarts(api_env, tmp_path)
    try:
        with Client(restarts.url, token=user.token) as client:
            job = client.jobs.submit("diagnostics.sleep", {"seconds": 5})
        retries: list[APIError] = []

        seen = follow(restarts, user.token, str(job.id), retries)

        assert restarts.restarts == 1  # it was cut mid-stream
        assert retries, "the client never had to reconnect"
        # It asked for what came after the last event it had, not for all of it again.
        assert restarts.resumed_from[0] == "0"
        assert str(restarts.cut_after) in restarts.resumed_from[1:]
        assert set(restarts.resumed_from[1:]) <= {str(restarts.cut_after)}
        assert [e.seq for e in seen] == list(range(1, len(seen) + 1))  # none lost, none twice
        assert seen[-1].ends_job
        assert seen[-1].data["status"] == "succeeded"
        with Client(restarts.url, token=user.token) as client:
            assert seen == client.jobs.events(job.id, limit=1000).items
    finally:
        restarts.stop()
