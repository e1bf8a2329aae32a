"""A followed job whose API is killed and restarted mid-stream: the client reconnects
with Last-Event-ID, and what it yields is the job's whole event log, once."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from core.client import APIError, AsyncClient, Client, JobEvent
from tests.support.api_server import ApiServer
from tests.support.factories import User
from tests.support.worker import WorkerProcess


class Restarts:
    """The API on one port: killed outright at `cut()`, then started again there."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self._env = env
        self._log_dir = log_dir
        self.servers = [ApiServer(env, self._new_dir())]
        self.url = self.servers[0].url

    def _new_dir(self) -> Path:
        path = self._log_dir / f"api-{len(getattr(self, 'servers', []))}"
        path.mkdir()
        return path

    def cut(self) -> None:
        self.servers[-1].stop(signal.SIGKILL)
        self.servers.append(ApiServer(self._env, self._new_dir(), port=self.servers[0].port))

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def _follow_sync(
    restarts: Restarts, token: str, job_id: str, retries: list[APIError]
) -> list[JobEvent]:
    seen: list[JobEvent] = []
    with Client(restarts.url, token=token) as client:
        for event in client.jobs.stream(job_id, on_retry=lambda error, _: retries.append(error)):
            seen.append(event)
            if event.type == "progress" and len(restarts.servers) == 1:
                restarts.cut()
    return seen


def _follow_async(
    restarts: Restarts, token: str, job_id: str, retries: list[APIError]
) -> list[JobEvent]:
    async def follow() -> list[JobEvent]:
        seen: list[JobEvent] = []
        async with AsyncClient(restarts.url, token=token) as client:
            stream = client.jobs.stream(job_id, on_retry=lambda error, _: retries.append(error))
            async for event in stream:
                seen.append(event)
                if event.type == "progress" and len(restarts.servers) == 1:
                    await asyncio.to_thread(restarts.cut)
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

        assert len(restarts.servers) == 2  # it was cut mid-stream
        assert retries, "the client never had to reconnect"
        assert [e.seq for e in seen] == list(range(1, len(seen) + 1))  # none lost, none twice
        assert seen[-1].ends_job
        assert seen[-1].data["status"] == "succeeded"
        with Client(restarts.url, token=user.token) as client:
            assert seen == client.jobs.events(job.id, limit=1000).items
    finally:
        restarts.stop()
