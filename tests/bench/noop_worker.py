"""The worker of `make bench`'s Celery baseline: `celery -A tests.bench.noop_worker worker`.

The same Celery configuration as the job worker (`create_celery`), logging set up the
same way, and the same time limits as `diagnostics.echo`; the task's only work is one
Redis INCR, so what is left is the cost of Celery itself.
"""

from __future__ import annotations

import os
import time

import redis
from celery import Celery

from core.jobs.celery_app import create_celery
from core.jobs.contracts import ECHO, KINDS
from core.logs import configure_logging
from core.settings import get_settings
from tests.bench.noop_task import NOOP_TASK, noop_done_key

# worker/app.py's margin; core may not import worker/, and the limits must match so the
# prefork pool does the same per-task time-limit bookkeeping for both workers.
_SOFT_LIMIT_MARGIN_SECONDS = 10
_ECHO = KINDS[ECHO]

configure_logging("bench-noop")
settings = get_settings()
app: Celery = create_celery(settings, "conveyor-bench-noop")

_client: tuple[int, redis.Redis] | None = None


def _redis() -> redis.Redis:
    # Per process id: a prefork child must not share its parent's socket.
    global _client
    if _client is None or _client[0] != os.getpid():
        _client = (os.getpid(), redis.Redis.from_url(settings.celery_broker_url()))
    return _client[1]


@app.task(
    name=NOOP_TASK,
    queue=_ECHO.queue.value,
    time_limit=_ECHO.time_limit_seconds,
    soft_time_limit=_ECHO.time_limit_seconds - _SOFT_LIMIT_MARGIN_SECONDS,
)
def noop(counter: str, total: int) -> None:
    client = _redis()
    if client.incr(counter) == total:
        # The last task stamps the end, so the bench's polling interval does not count.
        client.set(noop_done_key(counter), repr(time.time()))
