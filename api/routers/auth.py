"""Registration, login sessions, and passwords."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Form, Request, Response, status

from api.deps import CurrentLogin, UnitOfWorkDep, client_ip
from api.routers.users import user_out
from api.schemas.auth import (
    MAX_PASSWORD,
    PasswordChange,
    RefreshRequest,
    RegisterRequest,
    ResetAccepted,
    ResetConfirm,
    ResetRequest,
    TokenResponse,
    UserOut,
    VerificationAccepted,
    VerificationConfirm,
)
from api.schemas.problem import problem_responses
from api.schemas.strings import NulFreeStr
from api.state import AppState, app_state
from core.identity import (
    accounts,
    client_verification,
    password_reset,
    sessions,
    tenants,
    throttle,
)
from core.identity.throttle import Action
from core.jobs.publishing import PendingPublishes

router = APIRouter(prefix="/auth", tags=["auth"])
log = logging.getLogger("conveyor.api")


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses=problem_responses(404, 409, 422, 429),
)
def register(request: Request, body: RegisterRequest, uow: UnitOfWorkDep) -> UserOut:
    """Create an account, its personal tenant and the owner membership; with the token
    of an invitation to this email, join that tenant too (a wrong token is a 404 and
    creates nothing)."""
    state = app_state(request)
    email = str(body.email)
    throttle.check(state.kv, state.settings, Action.REGISTER, client_ip(request), email)
    user = accounts.register(uow.session, email, body.password)
    if body.invitation_token is not None:
        tenants.accept(uow.session, state.settings, user, body.invitation_token)
    return user_out(uow, user)


def _tokens(pair: sessions.TokenPair) -> TokenResponse:
    return TokenResponse(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
    )


@router.post("/login", response_model=TokenResponse, responses=problem_responses(401, 422, 429))
def login(
    request: Request,
    username: Annotated[NulFreeStr, Form(max_length=320, description="The account's email.")],
    password: Annotated[NulFreeStr, Form(max_length=MAX_PASSWORD)],
    uow: UnitOfWorkDep,
) -> TokenResponse:
    """OAuth2 password flow (form-encoded): `username` is the email. Answers an access
    token and a refresh token for `/auth/refresh`."""
    state = app_state(request)
    ip = client_ip(request)
    known = accounts.find_active_user(uow.session, username)
    credential = known.password_hash if known is not None else ""
    throttle.check_login(state.kv, state.settings, ip, username, credential)
    user = accounts.authenticate(uow.session, username, password)
    throttle.remember_client(state.kv, state.settings, ip, user.email, user.password_hash)
    return _tokens(sessions.start(uow.session, state.settings, user.id))


@router.post("/refresh", response_model=TokenResponse, responses=problem_responses(401, 422))
def refresh(request: Request, body: RefreshRequest, uow: UnitOfWorkDep) -> TokenResponse:
    """Exchange a refresh token for a new pair. Each refresh token works once: using
    one again ends its whole session."""
    try:
        pair = sessions.rotate(uow.session, app_state(request).settings, body.refresh_token)
    except sessions.RefreshTokenReused:
        uow.session.commit()  # keep the revocation although the request fails
        raise
    return _tokens(pair)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 422),
)
def logout(request: Request, body: RefreshRequest, uow: UnitOfWorkDep) -> Response:
    """End the session the refresh token belongs to, with its access tokens."""
    sessions.end(uow.session, app_state(request).settings, body.refresh_token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/password-reset/request",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ResetAccepted,
    responses=problem_responses(422, 429),
)
def request_password_reset(
    request: Request, body: ResetRequest, background: BackgroundTasks
) -> ResetAccepted:
    """Email a reset code. The answer is the same whether or not the account exists,
    and so is its timing: the lookup and the email happen after the response."""
    state = app_state(request)
    email = str(body.email)
    throttle.check(state.kv, state.settings, Action.RESET, client_ip(request), email)
    issue = partial(password_reset.request_code, settings=state.settings, kv=state.kv, email=email)
    background.add_task(_send_code, state, issue, "a password reset code")
    return ResetAccepted()


def _send_code(state: AppState, issue: Callable[..., object], what: str) -> None:
    """After the response: `issue(session=…, publisher=…)` stores a code and queues its
    email, which is published once that has committed."""
    publishes = PendingPublishes()
    try:
        with state.db.transaction() as session:
            issue(session=session, publisher=publishes)
    except Exception:
        # After the response there is no one to tell; the user can ask again.
        log.exception("could not issue %s", what)
        return
    publishes.flush(state.publisher, state.settings.tenant_concurrency)


@router.post(
    "/login/verify-client/request",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=VerificationAccepted,
    responses=problem_responses(422, 429),
)
def request_client_verification(
    request: Request, body: ResetRequest, background: BackgroundTasks
) -> VerificationAccepted:
    """After a `429 client_verification_required` at login: email a code that lets this
    client sign in. The same answer whether or not the account exists."""
    state = app_state(request)
    email, ip = str(body.email), client_ip(request)
    throttle.check(state.kv, state.settings, Action.RESET, ip, email)
    issue = partial(
        client_verification.request_code,
        settings=state.settings,
        kv=state.kv,
        email=email,
        client_ip=ip,
    )
    background.add_task(_send_code, state, issue, "a sign-in code")
    return VerificationAccepted()


@router.post(
    "/login/verify-client/confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(400, 422, 429),
)
def confirm_client_verification(
    request: Request, body: VerificationConfirm, uow: UnitOfWorkDep
) -> Response:
    """Confirm this client with the emailed code (from the client that asked for it);
    then log in as usual."""
    state = app_state(request)
    email, ip = str(body.email), client_ip(request)
    throttle.check(state.kv, state.settings, Action.RESET_CONFIRM, ip, email)
    client_verification.confirm(uow.session, state.settings, state.kv, email, body.code, ip)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/password-reset/confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(400, 422, 429),
)
def confirm_password_reset(request: Request, body: ResetConfirm, uow: UnitOfWorkDep) -> Response:
    """Set a new password with the emailed code. The code works once; every session
    of the account ends."""
    state = app_state(request)
    email = str(body.email)
    throttle.check(state.kv, state.settings, Action.RESET_CONFIRM, client_ip(request), email)
    user = password_reset.confirm(
        uow.session, state.settings, state.kv, email, body.code, body.new_password
    )
    # The code proved the mailbox: this client logs in like one that did before.
    ip = client_ip(request)
    throttle.remember_client(state.kv, state.settings, ip, user.email, user.password_hash)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/password/change",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 422, 429),
)
def change_password(
    request: Request, body: PasswordChange, login: CurrentLogin, uow: UnitOfWorkDep
) -> Response:
    """Change the password with the current one; every other session ends."""
    state = app_state(request)
    throttle.check(
        state.kv, state.settings, Action.PASSWORD_CHANGE, client_ip(request), str(login.user.id)
    )
    accounts.change_password(uow.session, login.user.id, body.current_password, body.new_password)
    sessions.end_all(uow.session, login.user.id, "password_change", keep=login.session_id)
    password_reset.discard_code(state.kv, login.user.email)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
