"""Creating a job: validate against its kind's contract, insert it queued.

Publishing is the caller's business and happens after the commit (see
`core.queue.publish_job`); a job whose publish fails stays queued for the reconciler.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core.errors import ConveyorError, ErrorCode
from core.jobs.contracts import KINDS, JobKind, get_kind
from core.jobs.lifecycle import append_event
from core.jobs.states import EventType, JobStatus
from core.models import Job


@dataclass(frozen=True)
class Submitted:
    job: Job
    kind: JobKind
    # True when an Idempotency-Key matched an earlier identical request.
    replayed: bool


def validate_input(kind_name: str, raw_input: dict[str, Any]) -> tuple[JobKind, dict[str, Any]]:
    kind = get_kind(kind_name)
    if kind is None:
        raise ConveyorError(
            ErrorCode.UNKNOWN_JOB_KIND,
            f"Unknown job kind {kind_name!r}",
            known_kinds=sorted(KINDS),
        )
    nul_at = _find_nul(raw_input, "input")
    if nul_at is not None:
        raise ConveyorError(
            ErrorCode.VALIDATION_FAILED,
            "Job input cannot contain NUL characters",
            errors=[{"field": nul_at, "message": "must not contain NUL characters"}],
        )
    try:
        model = kind.input_model.model_validate(raw_input)
    except ValidationError as exc:
        raise ConveyorError(
            ErrorCode.VALIDATION_FAILED,
            f"The input does not match the {kind.name!r} contract",
            errors=[
                {"field": ".".join(["input", *map(str, err["loc"])]), "message": err["msg"]}
                for err in exc.errors()
            ],
        ) from exc
    return kind, model.model_dump(mode="json")


def _find_nul(value: Any, path: str) -> str | None:
    """Where a NUL character hides in a JSON value (PostgreSQL's JSONB refuses them)."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = path if "\x00" in key else _find_nul(item, f"{path}.{key}")
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            if found := _find_nul(item, f"{path}.{index}"):
                return found
    return None


def _fingerprint(kind: str, job_input: dict[str, Any]) -> str:
    canonical = json.dumps(
        {"kind": kind, "input": job_input}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def submit(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID | None,
    kind_name: str,
    raw_input: dict[str, Any],
    max_attempts: int,
    idempotency_key: str | None = None,
) -> Submitted:
    kind, job_input = validate_input(kind_name, raw_input)
    job_id = uuid.uuid4()
    fingerprint = _fingerprint(kind.name, job_input) if idempotency_key else None
    inserted = session.execute(
        insert(Job)
        .values(
            id=job_id,
            tenant_id=tenant_id,
            user_id=user_id,
            kind=kind.name,
            queue=kind.queue.value,
            status=JobStatus.QUEUED,
            input=job_input,
            max_attempts=max_attempts,
            idempotency_key=idempotency_key,
            request_fingerprint=fingerprint,
            event_seq=1,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "idempotency_key"])
        .returning(Job.id)
    ).scalar_one_or_none()
    if inserted is None:
        existing = session.scalars(
            select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == idempotency_key)
        ).one()
        if existing.request_fingerprint != fingerprint:
            raise ConveyorError(ErrorCode.IDEMPOTENCY_CONFLICT, existing_job_id=str(existing.id))
        return Submitted(job=existing, kind=kind, replayed=True)
    append_event(
        session, job_id, 1, EventType.STATUS, {"status": JobStatus.QUEUED.value, "attempt": 0}
    )
    job = session.get_one(Job, job_id)
    return Submitted(job=job, kind=kind, replayed=False)
