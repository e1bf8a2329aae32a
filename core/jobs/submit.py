"""Creating a job: validate against its kind's contract, insert it queued, and hand it
to the caller's publisher, which sends it once the transaction has committed (see
`core.jobs.publishing`); a job whose publish fails stays queued for the reconciler.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy import Boolean, DateTime, Select, bindparam, case, func, select
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.orm import Session

from core.errors import ConveyorError, ErrorCode
from core.jobs import dispatch, first_event
from core.jobs.contracts import JobKind, get_kind, public_kinds
from core.jobs.messages import JobMessage
from core.jobs.queries import JobRow
from core.jobs.states import JobStatus
from core.logs import current_request_id
from core.models import Job
from core.prepared import Prepared, autocommits
from core.settings import Settings


class Publisher(Protocol):
    """What to do once the transaction that inserted jobs has committed: publish a job,
    or dispatch a tenant's line the jobs joined. The request's unit of work in the API,
    a `PendingPublishes` elsewhere."""

    def publish_after_commit(self, message: JobMessage) -> None: ...

    def dispatch_after_commit(
        self, line: dispatch.Line, answered: Iterable[JobRow] = ()
    ) -> None: ...


@dataclass(frozen=True)
class Submitted:
    job: JobRow
    kind: JobKind
    # True when an Idempotency-Key matched an earlier identical request.
    replayed: bool
    # True when the job's line had no slot free as it was inserted, seen under the
    # line's shared lock: whoever frees one dispatches it, so the submit need not.
    line_full: bool = False


def validate_input(
    kind_name: str, raw_input: dict[str, Any], *, allow_internal: bool = False
) -> tuple[JobKind, dict[str, Any]]:
    kind = get_kind(kind_name)
    if kind is None or (kind.internal and not allow_internal):
        raise ConveyorError(
            ErrorCode.UNKNOWN_JOB_KIND,
            f"Unknown job kind {kind_name!r}",
            known_kinds=sorted(k.name for k in public_kinds()),
        )
    problem = find_unstorable(raw_input, "input")
    if problem is not None:
        field, message = problem
        raise ConveyorError(
            ErrorCode.VALIDATION_FAILED,
            f"The job input cannot be stored: {field} {message}",
            errors=[{"field": field, "message": message}],
        )
    try:
        model = kind.input_model.model_validate(raw_input)
    except ValidationError as exc:
        raise invalid_input(exc, kind.name) from exc
    return kind, model.model_dump(mode="json")


def invalid_input(exc: ValidationError, contract: str) -> ConveyorError:
    """A 422 naming each field of `input` that does not match `contract`."""
    return ConveyorError(
        ErrorCode.VALIDATION_FAILED,
        f"The input does not match the {contract!r} contract",
        errors=[
            {"field": ".".join(["input", *map(str, err["loc"])]), "message": err["msg"]}
            for err in exc.errors()
        ],
    )


MAX_INPUT_DEPTH = 32


def find_unstorable(value: Any, path: str) -> tuple[str, str] | None:
    """Where a JSON value holds something PostgreSQL's JSONB cannot store (NUL, lone
    surrogates) or nests deeper than any job needs; (field, message) or None. The
    field's path is built only for a value that has a problem: a large input costs a
    walk, not a string per element."""
    found = _unstorable(value, 0)
    if found is None:
        return None
    parts, message = found
    return ".".join([path, *reversed(parts)]), message


def _unstorable(value: Any, depth: int) -> tuple[list[str], str] | None:
    """(the path's parts, innermost first; the problem) or None."""
    if depth > MAX_INPUT_DEPTH:
        return [], f"nests deeper than {MAX_INPUT_DEPTH} levels"
    if isinstance(value, str):
        return ([], problem) if (problem := _bad_text(value)) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if problem := _bad_text(key):
                return [repr(key)], problem
            if found := _unstorable(item, depth + 1):
                found[0].append(str(key))
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if found := _unstorable(item, depth + 1):
                found[0].append(str(index))
                return found
    return None


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _bad_text(text: str) -> str:
    match = _UNSTORABLE.search(text)
    if match is None:
        return ""
    if match.group() == "\x00":
        return "must not contain NUL characters"
    return "must not contain unpaired surrogates"


def _fingerprint(kind: str, job_input: dict[str, Any], schedule: dict[str, Any]) -> str:
    # A request with no schedule hashes as it did before schedules existed.
    canonical = json.dumps(
        {"kind": kind, "input": job_input, **schedule}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


_INSERTED = (
    "id",
    "tenant_id",
    "user_id",
    "kind",
    "queue",
    "max_attempts",
    "idempotency_key",
    "request_fingerprint",
    "request_id",
)


def _insert_job_statement(*, in_line: bool = False) -> Select[Any]:
    """The job and its first event in one statement; `in_line`: and whether its line has
    a slot free (`room`). An Idempotency-Key already used inserts neither and returns
    no row."""
    run_after = bindparam("run_after", type_=DateTime(timezone=True))
    inserted = (
        insert(Job)
        .values(
            {
                **{name: bindparam(name) for name in _INSERTED},
                # Dispatched at once only where no cap applies (a due system job).
                "dispatched_at": case((bindparam("dispatched", type_=Boolean), func.now())),
                "input": bindparam("input", type_=JSONB),
                "status": JobStatus.QUEUED.value,
                "event_seq": 1,
                "run_after": run_after,
                # Due from now, or from its run_after if that is later.
                "queued_at": func.greatest(func.now(), func.coalesce(run_after, func.now())),
            }
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "idempotency_key"])
        .returning(*Job.__table__.c)
        .cte("inserted")
    )
    logged = first_event.logged(inserted, "logged")
    statement = select(inserted).add_cte(logged)
    if not in_line:
        return statement
    room = dispatch.has_room(bindparam("tenant_id"), bindparam("queue"), bindparam("default_cap"))
    return statement.add_columns(room.label("room"))


_INSERT_PARAMS = (*_INSERTED, "input", "run_after", "dispatched")
_INSERT_JOB = Prepared("insert_job", _insert_job_statement, required=_INSERT_PARAMS)
# Under the line's shared lock, and looking for a free slot: for a submit that commits
# as it inserts.
_INSERT_JOB_IN_LINE = Prepared(
    "insert_job_in_line",
    partial(_insert_job_statement, in_line=True),
    required=(*_INSERT_PARAMS, "default_cap"),
    before=dispatch.LINE_LOCK_SHARED,
)


def key_used(session: Session, tenant_id: uuid.UUID, idempotency_key: str) -> bool:
    """Whether the tenant has a job submitted with this Idempotency-Key."""
    found = session.scalar(
        select(Job.id).where(Job.tenant_id == tenant_id, Job.idempotency_key == idempotency_key)
    )
    return found is not None


@dataclass(frozen=True)
class NewJob:
    """A job as a request asked for it, validated, before it is inserted."""

    kind: JobKind
    input: dict[str, Any]
    idempotency_key: str | None = None
    # When it may run (None: now), and how the request said so (`delay_seconds` or
    # `run_after`), which the Idempotency-Key's fingerprint covers.
    run_after: datetime | None = None
    schedule: dict[str, Any] = field(default_factory=dict)

    def line(self, tenant_id: uuid.UUID | None) -> dispatch.Line | None:
        """The tenant's line it joins now; None for a delayed or a system job."""
        if tenant_id is None or not _due(self):
            return None
        return (tenant_id, self.kind.queue.value)


def new_job(
    kind_name: str,
    raw_input: dict[str, Any],
    *,
    by_client: bool = False,
    idempotency_key: str | None = None,
    run_after: datetime | None = None,
    schedule: dict[str, Any] | None = None,
) -> NewJob:
    kind, job_input = validate_input(kind_name, raw_input, allow_internal=not by_client)
    return NewJob(kind, job_input, idempotency_key, run_after, schedule or {})


def insert_job(
    session: Session,
    new: NewJob,
    *,
    tenant_id: uuid.UUID | None,
    user_id: uuid.UUID | None,
    settings: Settings,
) -> Submitted:
    """Insert the job queued, undispatched unless it is a due system job (which has no
    cap), or find the one an earlier request made with its Idempotency-Key.

    On a session whose statements commit on their own, a due job of a tenant's is
    inserted under its line's shared lock, which tells whether the line has a slot free
    (`Submitted.line_full`). A dispatcher takes that lock alone, after it freed a slot:
    so either the insert saw the slot free, or the dispatcher waited for the insert to
    commit and sees the job. In a transaction the lock would be held until its end,
    keeping the line's dispatchers waiting, so there the line is dispatched after the
    commit whether a slot is free or not."""
    fingerprint = (
        _fingerprint(new.kind.name, new.input, new.schedule) if new.idempotency_key else None
    )
    params = {
        "id": uuid.uuid4(),
        "tenant_id": tenant_id,
        "user_id": user_id,
        "kind": new.kind.name,
        "queue": new.kind.queue.value,
        "input": new.input,
        "max_attempts": new.kind.max_attempts or settings.job_max_attempts,
        "idempotency_key": new.idempotency_key,
        "request_fingerprint": fingerprint,
        # The API request this runs in, if any: its id follows the job into the logs.
        "request_id": current_request_id(),
        "run_after": new.run_after,
        "dispatched": tenant_id is None and _due(new),
    }
    statement = _INSERT_JOB
    if (line := new.line(tenant_id)) is not None and autocommits(session.connection()):
        statement = _INSERT_JOB_IN_LINE
        params |= {"line_key": dispatch.line_key(*line), "default_cap": settings.tenant_concurrency}
    rows = statement.execute(session, params)
    if rows:
        row = rows[0]
        full = statement is _INSERT_JOB_IN_LINE and not row.room
        return Submitted(JobRow.of(row), new.kind, replayed=False, line_full=full)
    existing = session.scalars(
        select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == new.idempotency_key)
    ).one()
    if existing.request_fingerprint != fingerprint:
        raise ConveyorError(ErrorCode.IDEMPOTENCY_CONFLICT, existing_job_id=str(existing.id))
    return Submitted(JobRow.of_job(existing), new.kind, replayed=True)


def _due(new: NewJob) -> bool:
    return new.run_after is None or new.run_after <= datetime.now(UTC)


def submit(
    session: Session,
    publisher: Publisher,
    *,
    tenant_id: uuid.UUID | None,
    user_id: uuid.UUID | None,
    kind_name: str,
    raw_input: dict[str, Any],
    settings: Settings,
    idempotency_key: str | None = None,
    by_client: bool = False,
    run_after: datetime | None = None,
    schedule: dict[str, Any] | None = None,
) -> Submitted:
    """Insert a queued job; `tenant_id=None` makes a system job no tenant can see.
    `by_client`: the kind comes from a client (POST /jobs), which may not name an
    internal kind. A tenant's new job joins its line, which `publisher` dispatches
    once the job is committed (`core.jobs.dispatch`): it is published if it gets one of
    the tenant's slots, and waits in line if not. A replayed one (same
    Idempotency-Key) is never published again. `run_after`: a delayed job
    waits in PostgreSQL, unpublished, and is dispatched when it is due; `schedule`
    is how the request said when (`delay_seconds` or `run_after`), for the
    Idempotency-Key's fingerprint."""
    new = new_job(
        kind_name,
        raw_input,
        by_client=by_client,
        idempotency_key=idempotency_key,
        run_after=run_after,
        schedule=schedule,
    )
    submitted = insert_job(session, new, tenant_id=tenant_id, user_id=user_id, settings=settings)
    if submitted.replayed:
        return submitted
    # A tenant's due job joins its line, dispatched once the job is committed (unless
    # the line was full: the job then waits for whoever frees a slot).
    if (line := new.line(tenant_id)) is not None:
        if not submitted.line_full:
            publisher.dispatch_after_commit(line, [submitted.job])
    elif submitted.job.dispatched_at is not None:
        publisher.publish_after_commit(JobMessage.of_row(submitted.job))
    return submitted
