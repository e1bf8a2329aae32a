from __future__ import annotations

import pytest

from core.jobs.states import TERMINAL, JobStatus, can_transition


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
def test_terminal_states_never_change(terminal: JobStatus) -> None:
    assert terminal.is_terminal
    assert not any(can_transition(terminal, target) for target in JobStatus)


def test_the_lifecycle_edges() -> None:
    assert can_transition(JobStatus.QUEUED, JobStatus.RUNNING)
    assert can_transition(JobStatus.QUEUED, JobStatus.CANCELLED)
    assert can_transition(JobStatus.RUNNING, JobStatus.SUCCEEDED)
    assert can_transition(JobStatus.RUNNING, JobStatus.FAILED)
    assert can_transition(JobStatus.RUNNING, JobStatus.CANCELLED)
    # Only a retry or the reconciler sends a running job back.
    assert can_transition(JobStatus.RUNNING, JobStatus.QUEUED)
    assert not can_transition(JobStatus.QUEUED, JobStatus.SUCCEEDED)
    assert not JobStatus.RUNNING.is_terminal
