"""When a submit may go through on a recent count of its tenant's queued jobs instead of
counting them again."""

from __future__ import annotations

import time
import uuid

from core.jobs.quotas import RECOUNT_SECONDS, RecentCounts

TENANT = uuid.uuid4()
QUOTA = 10_000  # a hundredth: 100 without counting; a tenth (1,000) kept free


def test_a_process_lets_a_hundredth_of_the_quota_through_on_one_count() -> None:
    counts = RecentCounts()
    counts.counted(TENANT, 10, time.monotonic())

    assert [counts.admit(TENANT, 1, QUOTA) for _ in range(101)] == [True] * 100 + [False]
    assert counts.admit(TENANT, 1, QUOTA) is False
    counts.counted(TENANT, 110, time.monotonic())  # counted again: another hundredth
    assert counts.admit(TENANT, 100, QUOTA) is True


def test_near_the_quota_every_submit_counts() -> None:
    counts = RecentCounts()
    counts.counted(TENANT, 8_950, time.monotonic())

    assert counts.admit(TENANT, 50, QUOTA) is True  # 9,000: a tenth below
    assert counts.admit(TENANT, 1, QUOTA) is False


def test_an_old_count_or_another_tenants_is_no_guide() -> None:
    counts = RecentCounts()
    counts.counted(TENANT, 0, time.monotonic() - RECOUNT_SECONDS - 0.1)

    assert counts.admit(TENANT, 1, QUOTA) is False
    assert counts.admit(uuid.uuid4(), 1, QUOTA) is False


def test_a_small_quota_always_counts() -> None:
    counts = RecentCounts()
    counts.counted(TENANT, 0, time.monotonic())

    assert counts.admit(TENANT, 1, 99) is False
