"""Every job's first event, `queued` (seq 1), inserted by the statement that inserts
the job: a submit, or a job's end queueing its webhook deliveries."""

from __future__ import annotations

from sqlalchemy import CTE, insert, literal, select
from sqlalchemy.dialects.postgresql import JSONB

from core.jobs.states import EventType, JobStatus
from core.models import JobEvent

QUEUED = {"status": JobStatus.QUEUED.value, "attempt": 0}


def logged(inserted: CTE, name: str) -> CTE:
    """A CTE inserting the first event of each job whose `id` the CTE `inserted`
    returns; the jobs themselves are inserted with `event_seq` 1."""
    return (
        insert(JobEvent)
        .from_select(
            ["job_id", "seq", "type", "data"],
            select(
                inserted.c.id,
                literal(1),
                literal(EventType.STATUS.value),
                literal(QUEUED, JSONB),
            ),
        )
        .cte(name)
    )
