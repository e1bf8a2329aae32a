"""Secret input fields of finished jobs (email contents, codes), overwritten once the
job no longer needs them: by its worker when it finishes, by housekeeping for the rest."""

from __future__ import annotations

import uuid

from sqlalchemy import func, or_, update
from sqlalchemy.orm import Session

from core.jobs.contracts import JobKind
from core.jobs.states import JobStatus
from core.models import Job

REDACTED = "[redacted]"


def redact_finished(session: Session, kind: JobKind, job_ids: list[uuid.UUID] | None = None) -> int:
    """Overwrite the secret input fields of finished jobs of this kind (of `job_ids`, or
    all of them); returns how many jobs changed."""
    if not kind.secret_fields:
        return 0
    redacted = func.jsonb_build_object(
        *[item for field in kind.secret_fields for item in (field, REDACTED)]
    )
    statement = (
        update(Job)
        .where(
            Job.kind == kind.name,
            Job.status.in_([s.value for s in JobStatus if s.is_terminal]),
            or_(*[Job.input[field].astext != REDACTED for field in kind.secret_fields]),
        )
        .values(input=Job.input.op("||")(redacted))
    )
    if job_ids is not None:
        statement = statement.where(Job.id.in_(job_ids))
    return session.connection().execute(statement).rowcount
