"""Accepting an invitation to a tenant, for a user who already has an account."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api.deps import CurrentLogin, UnitOfWorkDep
from api.routers.tenants import tenant_out
from api.schemas.problem import problem_responses
from api.schemas.tenants import TenantOut
from api.state import app_state
from core.identity import tenants

router = APIRouter(prefix="/invitations", tags=["tenants"])


class AcceptInvitation(BaseModel):
    token: str = Field(min_length=1, max_length=100, description="From the invitation email.")


@router.post("/accept", response_model=TenantOut, responses=problem_responses(401, 403, 404, 422))
def accept_invitation(
    request: Request, body: AcceptInvitation, login: CurrentLogin, uow: UnitOfWorkDep
) -> TenantOut:
    """Join the tenant an invitation to your email is for; the token works once."""
    tenant, role = tenants.accept(uow.session, app_state(request).settings, login.user, body.token)
    return tenant_out(tenant, role)
