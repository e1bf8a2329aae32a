"""A fresh API process answers its first burst of concurrent submits, every one of
them: no request may meet state that the process builds on first use (the ORM's, the
cached statements) half-built by another."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx

from core.jobs.contracts import ECHO
from tests.support.api_server import ApiServer
from tests.support.factories import create_user
from tests.support.stack import Stack

STARTS = 8
BURST = 16


def test_a_fresh_api_answers_its_first_concurrent_submits(stack: Stack, tmp_path: Path) -> None:
    user = create_user(stack)
    # Published to a broker of its own that nothing reads: only the answers matter.
    env = {**stack.env, "BROKER_URL": "filesystem://", "DATA_DIR": str(tmp_path)}
    for start in range(STARTS):
        log_dir = tmp_path / f"start-{start}"
        log_dir.mkdir()
        api = ApiServer(env, log_dir)
        try:
            statuses = burst(api.url, user.headers)
        finally:
            api.stop()
        assert statuses == [202] * BURST, (start, statuses, api.log_path.read_text()[-3000:])


def burst(url: str, headers: dict[str, str]) -> list[int]:
    """BURST submits released at once, each on a connection of its own."""
    ready = threading.Barrier(BURST)
    statuses = [0] * BURST

    def submit(n: int) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            ready.wait()
            response = client.post("/api/v1/jobs", json={"kind": ECHO, "input": {"n": n}})
            statuses[n] = response.status_code

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(BURST)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses
