"""Jobs: submit, read, list, follow events, cancel. Every query is tenant-scoped."""

from __future__ import annotations

import uuid
import weakref
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api.deps import (
    CredentialsDep,
    IdempotencyKey,
    JobsRead,
    JobsWrite,
    UnitOfWork,
    UnitOfWorkDep,
    in_one_trip,
    reauthorize,
    user_claims,
)
from api.event_stream import job_event_stream
from api.problems import problem_body
from api.responses import accepted, json_response
from api.schemas.jobs import (
    BatchAccepted,
    BatchCreate,
    BatchJobCreate,
    BatchOut,
    BatchRefused,
    EventOut,
    EventPage,
    JobCreate,
    JobKindOut,
    JobPage,
)
from api.schemas.problem import problem_responses
from api.schemas.strings import NulFreeStr
from api.state import app_state
from core.errors import ConveyorError, ErrorCode
from core.identity.access import Principal, Scope
from core.jobs import lifecycle, queries, quotas
from core.jobs.batch import ItemOutcome, submit_batch
from core.jobs.contracts import Queue, public_kinds
from core.jobs.states import JobStatus
from core.jobs.submit import NewJob, Submitted, new_job, submit
from core.jobs.views import JobOut, JobSummary
from core.jobs.visibility import event_visible, withholds_uploads

router = APIRouter(tags=["jobs"])

MAX_PAGE = 100
# What a caller at the stream cap is told to wait before trying again.
STREAM_RETRY_SECONDS = 5


@router.get("/job-kinds", response_model=list[JobKindOut])
async def list_kinds() -> list[JobKindOut]:
    """The kinds a job may have, with the JSON Schema of their input and output."""
    return [
        JobKindOut(
            name=k.name,
            queue=k.queue.value,
            description=k.description,
            input_schema=k.input_model.model_json_schema(),
            output_schema=k.output_model.model_json_schema(),
        )
        for k in public_kinds()
    ]


@router.post(
    "/jobs",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses=problem_responses(401, 403, 404, 409, 413, 422, 429),
)
async def create_job(
    request: Request,
    body: JobCreate,
    credentials: CredentialsDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    state = app_state(request)

    def create(uow: UnitOfWork, scope: Principal) -> tuple[Submitted, Principal]:
        quotas.check_submit(uow.session, state.kv, state.settings, scope.tenant_id, idempotency_key)
        submitted = submit(
            uow.session,
            uow,
            tenant_id=scope.tenant_id,
            user_id=scope.user_id,
            kind_name=body.kind,
            raw_input=body.input,
            settings=state.settings,
            idempotency_key=idempotency_key,
            by_client=True,
            run_after=body.due(),
            schedule=body.schedule(),
        )
        return submitted, scope

    # The busiest route: one trip to the thread pool for the caller's check, the
    # insert, the dispatch and the publish. The job and its first event are one
    # statement, so nothing needs a transaction of its own. The answer is built after
    # them, so it shows whether the job got one of its tenant's slots.
    submitted, scope = await run_in_threadpool(
        partial(in_one_trip, autocommit=True), state, credentials, Scope.JOBS_WRITE, create
    )
    return accepted(submitted, scope)


@router.post(
    "/jobs/batch",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BatchOut,
    responses=problem_responses(401, 413, 422, 429),
)
def create_jobs(
    request: Request, body: BatchCreate, scope: JobsWrite, uow: UnitOfWorkDep
) -> Response:
    """Submit up to 1,000 jobs in one request. `items` answers each, in order: the job
    accepted (as `GET /jobs/{id}` shows it), or the problem that refused it alone. The
    accepted ones are one transaction, published after it commits. The tenant's quotas
    count every item, and refuse the whole batch."""
    state = app_state(request)
    quotas.check_submit(
        uow.session, state.kv, state.settings, scope.tenant_id, count=len(body.jobs)
    )
    outcomes = submit_batch(
        uow.session,
        uow,
        tenant_id=scope.tenant_id,
        user_id=scope.user_id,
        items=[_batch_item(raw) for raw in body.jobs],
        settings=state.settings,
    )
    # Committed and dispatched before the answer, which shows which jobs got a slot.
    uow.finish(state)
    return json_response(BatchOut(items=[_item_out(o, scope) for o in outcomes]), 202)


def _batch_item(raw: dict[str, Any]) -> NewJob | ConveyorError:
    try:
        item = BatchJobCreate.model_validate(raw)
        return new_job(
            item.kind,
            item.input,
            by_client=True,
            idempotency_key=item.idempotency_key,
            run_after=item.due(),
            schedule=item.schedule(),
        )
    except ValidationError as exc:
        return ConveyorError(
            ErrorCode.VALIDATION_FAILED,
            "The job is not valid",
            errors=[
                {"field": ".".join(map(str, err["loc"])), "message": err["msg"]}
                for err in exc.errors()
            ],
        )
    except ConveyorError as exc:
        return exc


def _item_out(outcome: ItemOutcome, scope: Principal) -> BatchAccepted | BatchRefused:
    if isinstance(outcome, ConveyorError):
        return BatchRefused(
            error=problem_body(outcome.error, detail=outcome.detail, **outcome.extra)
        )
    return BatchAccepted(job=JobOut.seen_by(outcome.job, scope), replayed=outcome.replayed)


@router.get("/jobs", response_model=JobPage, responses=problem_responses(401, 422))
def list_jobs(
    scope: JobsRead,
    uow: UnitOfWorkDep,
    status: JobStatus | None = None,
    kind: Annotated[NulFreeStr | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    cursor: Annotated[NulFreeStr | None, Query(max_length=200)] = None,
) -> JobPage:
    """Newest first, `limit` at a time; follow `next_cursor` for more. Items leave out
    `input` and `result` so that a page stays small: `GET /jobs/{id}` has them."""
    page = queries.list_jobs(
        uow.session, scope.tenant_id, limit=limit, cursor=cursor, status=status, kind=kind
    )
    return JobPage(
        items=[JobSummary.model_validate(j) for j in page.items], next_cursor=page.next_cursor
    )


@router.get("/jobs/{job_id}", response_model=JobOut, responses=problem_responses(401, 403, 404))
async def get_job(request: Request, job_id: uuid.UUID, credentials: CredentialsDep) -> Response:
    state = app_state(request)

    def read(uow: UnitOfWork, scope: Principal) -> Response:
        job = queries.read_job(uow.session, scope.tenant_id, job_id)
        return json_response(JobOut.seen_by(job, scope))

    def poll() -> Response:
        # Polled the most, so one trip to the thread pool; and for a signed-in user, the
        # check and the read in one statement. An API key, or a user the statement
        # finds nothing for, goes the usual way, which says why.
        claims = user_claims(state.settings, credentials)
        if claims is not None:
            with state.db.autocommit() as connection:
                found = queries.read_job_as_member(
                    connection, claims.user_id, claims.session_id, credentials.tenant_id, job_id
                )
            if found is not None:
                return json_response(JobOut.seen_by(*found))
        return in_one_trip(state, credentials, Scope.JOBS_READ, read, autocommit=True)

    return await run_in_threadpool(poll)


@router.get(
    "/jobs/{job_id}/events",
    response_model=EventPage,
    responses={200: {"content": {"text/event-stream": {}}}, **problem_responses(401, 404, 429)},
)
def list_events(
    request: Request,
    job_id: uuid.UUID,
    scope: JobsRead,
    uow: UnitOfWorkDep,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    last_event_id: Annotated[int | None, Header(ge=0)] = None,
) -> EventPage | StreamingResponse:
    """Events with `seq > after`, oldest first.

    With `Accept: text/event-stream` the answer is a server-sent event stream that
    follows the job until its terminal event; a reconnecting client's `Last-Event-ID`
    resumes it where it stopped. A caller (a user, or an API key) holds at most
    `EVENT_STREAMS_PER_CALLER` streams open per API process; one more is a 429.
    """
    job = queries.get_job(uow.session, scope.tenant_id, job_id)
    withheld = withholds_uploads(scope, job.kind)
    if "text/event-stream" in request.headers.get("accept", ""):
        state = app_state(request)
        caller = ("key", scope.api_key_id) if scope.api_key_id else ("user", scope.user_id)
        slot = state.streams.acquire(caller)
        if slot is None:
            raise ConveyorError(ErrorCode.TOO_MANY_STREAMS, retry_after=STREAM_RETRY_SECONDS)
        start = last_event_id if last_event_id is not None else after
        stream = job_event_stream(
            state.db,
            partial(reauthorize, principal=scope),
            scope.tenant_id,
            job_id,
            start,
            slot.release,
            partial(event_visible, withheld=withheld),
        )
        # A stream never started (the answer failed before its body) runs no `finally`:
        # the slot then goes back when the stream is collected.
        weakref.finalize(stream, slot.release)
        return StreamingResponse(
            stream,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    events = queries.list_events(uow.session, scope.tenant_id, job_id, after=after, limit=limit)
    return EventPage(
        items=[EventOut.model_validate(e) for e in events if event_visible(e.type, withheld)],
        next_after=events[-1].seq if events else after,
    )


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobOut,
    responses={202: {"model": JobOut}, **problem_responses(401, 404, 409)},
)
def cancel_job(
    job_id: uuid.UUID,
    response: Response,
    scope: JobsWrite,
    uow: UnitOfWorkDep,
) -> JobOut:
    """A queued job is cancelled at once (200); a running one stops at its next
    checkpoint (202, `cancel_requested_at` set)."""
    job = lifecycle.request_cancel(uow.session, scope.tenant_id, job_id)
    if job is None:
        raise ConveyorError(ErrorCode.JOB_NOT_FOUND)
    if job.status == JobStatus.CANCELLED:
        # The webhooks its end queued go now; and if it held one of the tenant's
        # slots, the next job in its line does too.
        uow.dispatch_after_commit((scope.tenant_id, Queue.WEBHOOKS.value))
        if job.dispatched_at is not None:
            uow.dispatch_after_commit((scope.tenant_id, job.queue))
    if job.status == JobStatus.RUNNING:
        response.status_code = status.HTTP_202_ACCEPTED
    elif job.status != JobStatus.CANCELLED:
        raise ConveyorError(
            ErrorCode.JOB_FINISHED, f"The job has already {job.status}", job_status=job.status
        )
    return JobOut.seen_by(job, scope)
