"""The embedded default's broker under processes that start together: binding queues to
one exchange at once leaves a table that every one of them can read."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

from kombu import Connection

from core.jobs.filesystem_broker import Transport

PROCESSES = 8
ROUNDS = 10


def _bind(folder: str, exchange: str, queue: str, start: object) -> None:
    options = {
        "data_folder_in": folder,
        "data_folder_out": folder,
        "control_folder": str(Path(folder) / "control"),
    }
    with Connection("filesystem://", transport=Transport, transport_options=options) as conn:
        channel: Any = conn.default_channel
        start.wait()  # type: ignore[attr-defined]
        channel._queue_bind(exchange, "", "", queue)


def test_queues_bound_at_once_are_all_in_a_table_that_parses(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    for round_number in range(ROUNDS):
        folder = tmp_path / f"round-{round_number}"
        folder.mkdir()
        start = context.Event()
        workers = [
            context.Process(
                target=_bind, args=(str(folder), "celery.pidbox", f"queue-{n:02d}", start)
            )
            for n in range(PROCESSES)
        ]
        for worker in workers:
            worker.start()
        start.set()
        for worker in workers:
            worker.join(timeout=60)
            assert worker.exitcode == 0

        table = json.loads((folder / "control" / "celery.pidbox.exchange").read_text())
        assert sorted(entry[2] for entry in table) == [f"queue-{n:02d}" for n in range(PROCESSES)]
