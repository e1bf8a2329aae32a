"""The Redis broker: kombu's transport, with one Redis client kept per channel.

kombu's Redis channel builds a new `redis.Redis` for every command it sends outside its
polling loop: each publish (a job's message, every task event for the monitor) and each
message taken or acknowledged. Building one costs more CPU than the command (redis-py
fills a table of response callbacks per client), a fifth of a worker's time per job. A
client holds no connection of its own (its pool does) and is safe to share between
threads, so the channel keeps one for as long as its connection pool lives.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis


class Channel(redis.Channel):
    _kept_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:  # the polling loop's client, built once by kombu itself
            return super()._create_client(asynchronous=True)  # type: ignore[misc]
        pool = self.pool
        kept = self._kept_client
        if kept is None or kept.connection_pool is not pool:
            # A new pool after a reconnect gets a client of its own.
            kept = self._kept_client = super()._create_client()  # type: ignore[misc]
        return kept


class Transport(redis.Transport):
    Channel = Channel
