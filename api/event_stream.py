"""Server-sent events for a job's event log: the same rows as the JSON listing, pushed
as they are written, ending after the job's terminal event."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.schemas.jobs import EventOut
from core.db import Database
from core.errors import ConveyorError
from core.jobs import queries
from core.jobs.states import JobStatus

POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0
BATCH = 500


def _frame(event: EventOut) -> str:
    return f"id: {event.seq}\nevent: {event.type}\ndata: {event.model_dump_json()}\n\n"


# Raises ConveyorError once the caller has lost access (logout, removal, revoked key).
Authorize = Callable[[Session], object]


def _fetch(
    db: Database,
    authorize: Authorize,
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    after: int,
    visible: Callable[[str], bool],
) -> tuple[list[str], int, bool]:
    with db.transaction() as session:
        authorize(session)
        status = queries.get_job(session, tenant_id, job_id).status
        events = queries.list_events(session, tenant_id, job_id, after=after, limit=BATCH)
        # The same JSON as one item of the listing, so clients parse both alike.
        frames = [_frame(EventOut.model_validate(e)) for e in events if visible(e.type)]
        last = events[-1].seq if events else after
        # Everything is sent once the job is terminal and this batch was not full.
        done = JobStatus(status).is_terminal and len(events) < BATCH
        return frames, last, done


async def job_event_stream(
    db: Database,
    authorize: Authorize,
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    after: int,
    release: Callable[[], None],
    visible: Callable[[str], bool],
) -> AsyncIterator[str]:
    """Stream until the job's terminal event, or until the caller loses access: access is
    checked again on every poll, so a logout ends an open stream too. `release` gives
    the caller's stream slot back however the stream ends."""
    try:
        async for frame in _frames(db, authorize, tenant_id, job_id, after, visible):
            yield frame
    finally:
        release()


async def _frames(
    db: Database,
    authorize: Authorize,
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    after: int,
    visible: Callable[[str], bool],
) -> AsyncIterator[str]:
    yield f"retry: {int(POLL_SECONDS * 4000)}\n\n"
    quiet_since = time.monotonic()
    while True:
        try:
            frames, after, done = await run_in_threadpool(
                _fetch, db, authorize, tenant_id, job_id, after, visible
            )
        except ConveyorError:
            return  # a reconnect gets the 401 or 404 that says why
        for frame in frames:
            yield frame
        if done:
            return
        if frames:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > KEEPALIVE_SECONDS:
            # A comment line keeps proxies from closing an idle stream.
            yield ": keepalive\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(POLL_SECONDS)
