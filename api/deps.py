"""Request dependencies: the unit of work, the caller, and the active tenant."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

import anyio
from fastapi import Depends, Header, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.schemas.strings import NulFreeStr
from api.state import AppState, app_state
from core.errors import ConveyorError, ErrorCode
from core.identity import accounts, api_keys
from core.identity.access import Principal, Scope
from core.identity.credentials import TokenClaims, TokenType, decode_token
from core.jobs.publishing import PendingPublishes
from core.models import User
from core.settings import Settings

T = TypeVar("T")


class UnitOfWork(PendingPublishes):
    """The request's one transaction; the jobs submitted in it (it is their publisher)
    are published once it has committed."""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session

    def finish(self, state: AppState) -> None:
        """Commit, then dispatch and publish what the transaction submitted. Once done,
        doing it again does nothing: a route that answers with what the dispatch gave
        out finishes before it answers, and its dependency's own finish is then empty."""
        try:
            self.session.commit()
        finally:
            self.session.close()
        self.flush(state.publisher, state.settings.tenant_concurrency)


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
    await run_in_threadpool(uow.finish, state)


# scope="function": commit before the response is sent, so a client that got 202
# can read the job it was told about.
UnitOfWorkDep = Annotated[UnitOfWork, Depends(_unit_of_work, scope="function")]

_bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login", auto_error=False)


# Far above any token this API issues; anything longer is refused unread.
MAX_BEARER_LENGTH = 4096


async def _bearer_token(token: Annotated[str | None, Depends(_bearer)]) -> str:
    if token is None:
        raise ConveyorError(ErrorCode.NOT_AUTHENTICATED)
    if len(token) > MAX_BEARER_LENGTH:
        raise ConveyorError(ErrorCode.INVALID_TOKEN, "The token is too long")
    return token


BearerToken = Annotated[str, Depends(_bearer_token)]

IdempotencyKey = Annotated[
    NulFreeStr | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Repeat a request safely: the same key and body return the "
        "same job; the same key with another body is a 409.",
    ),
]

TenantHeader = Annotated[
    uuid.UUID | None,
    Header(
        alias="X-Tenant-ID",
        description="Active tenant; defaults to the caller's personal tenant "
        "(an API key's own tenant).",
    ),
]


@dataclass(frozen=True)
class Credentials:
    """What a request presents: its bearer token and the tenant it names, not yet
    checked (`authorize` does, against the database)."""

    token: str
    tenant_id: uuid.UUID | None


async def _credentials(token: BearerToken, x_tenant_id: TenantHeader = None) -> Credentials:
    return Credentials(token, x_tenant_id)


# For the busiest routes, which check the caller in the same trip to the thread pool as
# their own work: each trip costs the API more than the query it makes.
CredentialsDep = Annotated[Credentials, Depends(_credentials)]


def user_claims(settings: Settings, credentials: Credentials) -> TokenClaims | None:
    """A user's access token, verified (signature, expiry, type); None for an API key.
    Whether its login is still live is the database's to say."""
    if api_keys.looks_like_api_key(credentials.token):
        return None
    return decode_token(settings, credentials.token, TokenType.ACCESS)


def authorize(session: Session, settings: Settings, credentials: Credentials) -> Principal:
    """The caller (a user or an API key) in the tenant the request names."""
    tenant_id = credentials.tenant_id
    claims = user_claims(settings, credentials)
    if claims is None:
        return api_keys.authenticate(session, credentials.token, tenant_id)
    return accounts.tenant_access(session, claims.user_id, claims.session_id, tenant_id)


def in_one_trip(
    state: AppState,
    credentials: Credentials,
    scope: Scope,
    work: Callable[[UnitOfWork, Principal], T],
    *,
    autocommit: bool = False,
) -> T:
    """The caller checked, `work` done and its unit of work committed (its jobs
    published), all in one thread: for a route that runs it with one trip to the thread
    pool where its dependencies would take three. `autocommit`: `work` reads, and
    writes with at most one statement, so each statement commits alone
    (`Database.reads`): no BEGIN and COMMIT round trips."""
    uow = UnitOfWork(state.db.reads() if autocommit else state.db.sessions())
    try:
        principal = authorize(uow.session, state.settings, credentials)
        principal.require_scope(scope)
        result = work(uow, principal)
    except BaseException:
        uow.session.close()  # rolls back
        raise
    uow.finish(state)
    return result


def _principal(request: Request, credentials: CredentialsDep, uow: UnitOfWorkDep) -> Principal:
    return authorize(uow.session, app_state(request).settings, credentials)


# The caller (a user or an API key) in the active tenant.
TenantScope = Annotated[Principal, Depends(_principal)]


def reauthorize(session: Session, principal: Principal) -> Principal:
    """The same caller's access checked again, for work that outlives the request's
    first check (an event stream): raises once the login ended, the membership went,
    or the key was revoked."""
    if principal.api_key_id is not None:
        return api_keys.authorize_again(session, principal)
    if principal.user_id is None or principal.session_id is None:
        raise ConveyorError(ErrorCode.INVALID_TOKEN)
    return accounts.tenant_access(
        session, principal.user_id, principal.session_id, principal.tenant_id
    )


def _requiring(scope: Scope) -> Callable[[Principal], Awaitable[Principal]]:
    # Async: a set lookup, not worth a trip to the thread pool, which a plain def takes.
    async def check(principal: TenantScope) -> Principal:
        principal.require_scope(scope)
        return principal

    return check


JobsRead = Annotated[Principal, Depends(_requiring(Scope.JOBS_READ))]
JobsWrite = Annotated[Principal, Depends(_requiring(Scope.JOBS_WRITE))]
UploadsRead = Annotated[Principal, Depends(_requiring(Scope.UPLOADS_READ))]
UploadsWrite = Annotated[Principal, Depends(_requiring(Scope.UPLOADS_WRITE))]
AgentsRun = Annotated[Principal, Depends(_requiring(Scope.AGENTS_RUN))]
WebhooksRead = Annotated[Principal, Depends(_requiring(Scope.WEBHOOKS_READ))]
WebhooksWrite = Annotated[Principal, Depends(_requiring(Scope.WEBHOOKS_WRITE))]


@dataclass(frozen=True)
class Login:
    user: User
    session_id: uuid.UUID


def _login(request: Request, token: BearerToken, uow: UnitOfWorkDep) -> Login:
    if api_keys.looks_like_api_key(token):
        raise ConveyorError(ErrorCode.USER_LOGIN_REQUIRED)
    claims = decode_token(app_state(request).settings, token, TokenType.ACCESS)
    user = accounts.active_user(uow.session, claims.user_id, claims.session_id)
    return Login(user, claims.session_id)


# A logged-in user (never an API key), for account and tenant management.
CurrentLogin = Annotated[Login, Depends(_login)]


def tenant_principal(uow: UnitOfWork, login: Login, tenant_id: uuid.UUID) -> Principal:
    """The logged-in user in a tenant named by the path; 404 if not theirs."""
    return accounts.tenant_access(uow.session, login.user.id, login.session_id, tenant_id)


def client_ip(request: Request) -> str:
    """The peer address; behind a proxy, run uvicorn with --forwarded-allow-ips so it
    is the client's rather than the proxy's."""
    return request.client.host if request.client else "unknown"
