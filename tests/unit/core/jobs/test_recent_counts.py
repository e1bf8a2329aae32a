"""When a submit may go through on a recent count of its tenant's queued jobs instead of
counting them again."""

from __future__ import annotations

import time
import uuid

from core.jobs.quotas import RECOUNT_SECONDS, RecentCounts

TENANT = uuid.uuid4()


def test_submits_well_below_the_quota_go_through_on_a_recent_count_and_add_to_it() -> None:
    counts = RecentCounts()
    counts.counted(TENANT, 80, time.monotonic())

    # A tenth of the quota (10 of 100) is kept free of guesses: up to 90 on the count.
    assert [counts.admit(TENANT, 1, 100) for _ in range(11)] == [True] * 10 + [False]
    assert counts.admit(TENANT, 1, 100) is False


def test_a_batch_that_would_come_near_the_quota_is_counted_again() -> None:
    counts = RecentCounts()
    counts.counted(TENANT, 10, time.monotonic())

    assert counts.admit(TENANT, 81, 100) is False
    assert counts.admit(TENANT, 80, 100) is True


def test_an_old_count_or_another_tenants_is_no_guide() -> None:
    counts = RecentCounts()
    counts.counted(TENANT, 0, time.monotonic() - RECOUNT_SECONDS - 0.1)

    assert counts.admit(TENANT, 1, 100) is False
    assert counts.admit(uuid.uuid4(), 1, 100) is False


def test_a_small_quota_is_always_counted_near_its_end() -> None:
    counts = RecentCounts()
    counts.counted(TENANT, 1, time.monotonic())

    assert counts.admit(TENANT, 1, 3) is True  # 2 of 3: one below
    assert counts.admit(TENANT, 1, 3) is False
