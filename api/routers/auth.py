"""Registration and login."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, status

from api.deps import UnitOfWorkDep
from api.routers.users import user_out
from api.schemas.auth import MAX_PASSWORD, RegisterRequest, TokenResponse, UserOut
from api.schemas.problem import problem_responses
from api.schemas.text import Text
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
    request: Request,
    username: Annotated[Text, Form(max_length=320, description="The account's email.")],
    password: Annotated[Text, Form(max_length=MAX_PASSWORD)],
    uow: UnitOfWorkDep,
) -> TokenResponse:
    """OAuth2 password flow (form-encoded): `username` is the email."""
    user = accounts.authenticate(uow.session, username, password)
    token, lifetime = create_access_token(app_state(request).settings, user.id)
    return TokenResponse(access_token=token, expires_in=lifetime)
