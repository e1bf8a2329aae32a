from __future__ import annotations

import threading

from api.readiness import ReadinessCache


def test_callers_do_not_queue_behind_a_slow_check() -> None:
    release = threading.Event()
    calls: list[int] = []

    def probe() -> dict[str, str]:
        calls.append(1)
        if len(calls) == 2:  # the second check hangs on a slow service
            release.wait(30)
        return {"database": "ok"}

    cache = ReadinessCache(probe, max_age=0.0)  # every call wants a fresh check
    first = cache.get()
    slow = threading.Thread(target=cache.get)
    slow.start()
    while len(calls) < 2:
        threading.Event().wait(0.01)

    # While that check runs, callers get the last answer at once instead of waiting.
    answers = [cache.get() for _ in range(5)]

    release.set()
    slow.join(30)
    assert all(answer is first for answer in answers)
    assert len(calls) == 2
