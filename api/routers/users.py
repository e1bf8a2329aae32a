from __future__ import annotations

from fastapi import APIRouter

from api.deps import CurrentLogin, UnitOfWork, UnitOfWorkDep
from api.schemas.auth import TenantMembership, UserOut
from api.schemas.problem import problem_responses
from core.identity.accounts import tenants_of
from core.models import User

router = APIRouter(prefix="/users", tags=["users"])


def user_out(uow: UnitOfWork, user: User) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        created_at=user.created_at,
        personal_tenant_id=user.personal_tenant_id,
        tenants=[
            TenantMembership(id=t.id, name=t.name, personal=t.personal, role=role)
            for t, role in tenants_of(uow.session, user.id)
        ],
    )


@router.get("/me", response_model=UserOut, responses=problem_responses(401, 403))
def me(login: CurrentLogin, uow: UnitOfWorkDep) -> UserOut:
    """The logged-in user and the tenants they belong to, with their role in each."""
    return user_out(uow, login.user)
