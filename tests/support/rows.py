"""Reading a job's row and events straight from the database."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from core.db import Database
from core.models import Job, JobEvent


def job_state(db: Database, job_id: uuid.UUID) -> tuple[Job, list[JobEvent]]:
    with db.transaction() as session:
        job = session.get_one(Job, job_id)
        events = list(
            session.scalars(
                select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.seq)
            )
        )
        return job, events
