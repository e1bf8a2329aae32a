"""Many jobs in one request (`POST /api/v1/jobs/batch`).

Each item is judged on its own: one that is invalid (an unknown kind, an input that
breaks its kind's contract, an Idempotency-Key used for another request) is refused
alone, and the others are accepted. A client sending a thousand jobs learns which ones
failed, instead of sending the rest again. The accepted jobs are inserted in the
request's one transaction and published after its commit, as single submits are; an
item repeating an earlier request's key answers with that request's job.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.orm import Session

from core.errors import ConveyorError
from core.jobs import dispatch
from core.jobs.queries import JobRow
from core.jobs.submit import NewJob, Publisher, Submitted, insert_job
from core.settings import Settings

# The most jobs one batch may hold.
MAX_BATCH_JOBS = 1000

# What became of one item: its job, or why it was refused.
ItemOutcome = Submitted | ConveyorError


def submit_batch(
    session: Session,
    publisher: Publisher,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID | None,
    items: Sequence[NewJob | ConveyorError],
    settings: Settings,
) -> list[ItemOutcome]:
    """Insert each validated item (`core.jobs.submit.new_job`); an item that is already
    an error stays one. Outcomes are in the items' order."""
    outcomes: list[ItemOutcome] = []
    for item in items:
        if isinstance(item, ConveyorError):
            outcomes.append(item)
            continue
        try:
            outcomes.append(
                insert_job(session, item, tenant_id=tenant_id, user_id=user_id, settings=settings)
            )
        except ConveyorError as exc:  # its key was used for another request
            outcomes.append(exc)
    # The lines the new jobs joined are dispatched once they are committed.
    joined: dict[dispatch.Line, list[JobRow]] = {}
    for item, outcome in zip(items, outcomes, strict=True):
        if isinstance(outcome, Submitted) and not outcome.replayed:
            assert isinstance(item, NewJob)
            if (line := item.line(tenant_id)) is not None:
                joined.setdefault(line, []).append(outcome.job)
    for line, jobs in joined.items():
        publisher.dispatch_after_commit(line, jobs)
    return outcomes
