"""The `filesystem://` broker of the embedded default (one machine, no servers): kombu's
transport, with one race closed.

kombu binds a queue to an exchange by creating the exchange's file with mode "wb" when it
does not exist yet. Two processes starting together (a worker and the agents worker both
binding their control queues) both find no file; the second one's open truncates the
file and its shorter write leaves part of the first one's behind. The file no longer
parses, and every broadcast (Flower's worker list, revokes) fails until it is deleted.
Here the file is opened without truncating, read and rewritten under one lock.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from kombu.transport import filesystem
from kombu.utils.json import dumps, loads


class Channel(filesystem.Channel):
    def _queue_bind(
        self, exchange: str, routing_key: str | None, pattern: str | None, queue: str | None
    ) -> None:
        folder = Path(self.control_folder)
        path = folder / f"{exchange}.exchange"
        if path.parent != folder:  # the name must not reach outside the folder
            raise ValueError(f"Invalid exchange name: {exchange!r}")
        folder.mkdir(exist_ok=True)
        entry = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        with os.fdopen(fd, "r+b", buffering=0) as file:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX)
            try:
                raw = file.read()
                table: list[Any] = loads(raw.decode()) if raw.strip() else []
                queues = [filesystem.exchange_queue_t(*item) for item in table]
                if entry not in queues:
                    queues.insert(0, entry)
                    file.seek(0)
                    file.write(dumps(queues).encode())
                    file.truncate()
            finally:
                fcntl.flock(file.fileno(), fcntl.LOCK_UN)


class Transport(filesystem.Transport):
    Channel = Channel
