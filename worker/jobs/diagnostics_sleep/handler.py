"""diagnostics.sleep: sleeps with a progress event a second; stops promptly on cancel."""

from __future__ import annotations

import time

from core.jobs.contracts import SLEEP, SleepInput, SleepOutput
from worker.context import JobContext

KIND = SLEEP


def handle(ctx: JobContext, data: SleepInput) -> SleepOutput:
    start = time.monotonic()
    deadline = start + data.seconds
    while (remaining := deadline - time.monotonic()) > 0:
        time.sleep(min(1.0, remaining))
        elapsed = time.monotonic() - start
        ctx.progress(min(elapsed / data.seconds, 1.0), f"slept {elapsed:.0f}s")
    return SleepOutput(slept_seconds=round(time.monotonic() - start, 3))
