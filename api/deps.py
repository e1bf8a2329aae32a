"""Request dependencies: the unit of work, the caller, and the active tenant."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import Depends, Header, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.state import AppState, app_state
from core.accounts import TenantAccess, tenant_access
from core.errors import ConveyorError, ErrorCode
from core.jobs.contracts import JobKind
from core.jobs.publishing import publish_committed
from core.security import AccessClaims, decode_access_token


class UnitOfWork:
    """The request's one transaction, and the tasks to publish once it has committed."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._to_publish: list[tuple[uuid.UUID, JobKind]] = []

    def publish_after_commit(self, job_id: uuid.UUID, kind: JobKind) -> None:
        self._to_publish.append((job_id, kind))

    def flush_publishes(self, state: AppState) -> None:
        publish_committed(state.celery, state.db, self._to_publish)


def _finish(uow: UnitOfWork, state: AppState) -> None:
    try:
        uow.session.commit()
    finally:
        uow.session.close()
    uow.flush_publishes(state)


async def _unit_of_work(request: Request) -> AsyncIterator[UnitOfWork]:
    # Async, so opening the session (no I/O yet) costs no trip to the thread pool;
    # the commit, the publishes and a rollback each run in one.
    state = app_state(request)
    uow = UnitOfWork(state.db.sessions())
    try:
        yield uow
    except BaseException:
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(uow.session.close)  # rolls back
        raise
    await run_in_threadpool(_finish, uow, state)


# scope="function": commit before the response is sent, so a client that got 202
# can read the job it was told about.
UnitOfWorkDep = Annotated[UnitOfWork, Depends(_unit_of_work, scope="function")]

_bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login", auto_error=False)


async def _current_claims(
    request: Request, token: Annotated[str | None, Depends(_bearer)]
) -> AccessClaims:
    if token is None:
        raise ConveyorError(ErrorCode.NOT_AUTHENTICATED)
    return decode_access_token(app_state(request).settings, token)


CurrentClaims = Annotated[AccessClaims, Depends(_current_claims)]


def _tenant_scope(
    claims: CurrentClaims,
    uow: UnitOfWorkDep,
    x_tenant_id: Annotated[
        uuid.UUID | None,
        Header(description="Active tenant; defaults to the caller's personal tenant."),
    ] = None,
) -> TenantAccess:
    return tenant_access(uow.session, claims.user_id, x_tenant_id)


TenantScope = Annotated[TenantAccess, Depends(_tenant_scope)]
