"""Registration and login."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from api.deps import UnitOfWorkDep
from api.routers.users import user_out
from api.schemas.auth import RegisterRequest, TokenResponse, UserOut
from api.schemas.problem import problem_responses
from api.state import app_state
from core import accounts
from core.security import create_access_token

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses=problem_responses(409, 422),
)
def register(body: RegisterRequest, uow: UnitOfWorkDep) -> UserOut:
    """Create an account, its personal tenant, and the owner membership."""
    user = accounts.register(uow.session, str(body.email), body.password)
    return user_out(uow, user)


@router.post("/login", response_model=TokenResponse, responses=problem_responses(401, 422))
def login(
    request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()], uow: UnitOfWorkDep
) -> TokenResponse:
    """OAuth2 password flow: `username` is the email."""
    user = accounts.authenticate(uow.session, form.username, form.password)
    token, lifetime = create_access_token(app_state(request).settings, user.id)
    return TokenResponse(access_token=token, expires_in=lifetime)
