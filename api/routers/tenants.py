"""Tenants the caller belongs to, their members, roles and invitations.

Every route names its tenant in the path; a tenant the caller is not a member of is a
404, like one that does not exist.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response, status

from api.deps import CurrentLogin, UnitOfWorkDep, client_ip, tenant_principal
from api.schemas.problem import problem_responses
from api.schemas.tenants import (
    MemberCreate,
    MemberOut,
    MemberUpdate,
    TenantCreate,
    TenantLimits,
    TenantOut,
)
from api.state import app_state
from core.identity import tenants, throttle
from core.identity.accounts import tenants_of
from core.identity.mail import invitation_email, queue_email
from core.identity.throttle import Action
from core.jobs import quotas
from core.models import Role, Tenant

router = APIRouter(prefix="/tenants", tags=["tenants"])

# With no quota, queued jobs are counted up to this many and no further.
QUEUED_COUNT_CAP = 100_000


def tenant_out(tenant: Tenant, role: str) -> TenantOut:
    return TenantOut(
        id=tenant.id,
        name=tenant.name,
        personal=tenant.personal,
        created_at=tenant.created_at,
        role=Role(role),
    )


@router.get("", response_model=list[TenantOut], responses=problem_responses(401, 403))
def list_tenants(login: CurrentLogin, uow: UnitOfWorkDep) -> list[TenantOut]:
    """The tenants the caller belongs to, oldest first, with their role in each."""
    return [tenant_out(t, role) for t, role in tenants_of(uow.session, login.user.id)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TenantOut,
    responses=problem_responses(401, 403, 422, 429),
)
def create_tenant(
    request: Request, body: TenantCreate, login: CurrentLogin, uow: UnitOfWorkDep
) -> TenantOut:
    """A team tenant, with the caller as its owner (`TENANT_LIMIT_PER_USER` a day)."""
    state = app_state(request)
    throttle.check(
        state.kv, state.settings, Action.CREATE_TENANT, client_ip(request), str(login.user.id)
    )
    tenant = tenants.create(uow.session, login.user.id, body.name)
    return tenant_out(tenant, Role.OWNER)


@router.get("/{tenant_id}", response_model=TenantOut, responses=problem_responses(401, 404))
def get_tenant(tenant_id: uuid.UUID, login: CurrentLogin, uow: UnitOfWorkDep) -> TenantOut:
    principal = tenant_principal(uow, login, tenant_id)
    return tenant_out(tenants.get(uow.session, tenant_id), principal.role or Role.MEMBER)


@router.get(
    "/{tenant_id}/limits", response_model=TenantLimits, responses=problem_responses(401, 404)
)
def get_limits(
    request: Request, tenant_id: uuid.UUID, login: CurrentLogin, uow: UnitOfWorkDep
) -> TenantLimits:
    """The tenant's concurrency cap, queued-jobs quota and submit rate limit, and how
    many jobs it has queued: any member may read them."""
    tenant_principal(uow, login, tenant_id)
    settings = app_state(request).settings
    tenant = tenants.get(uow.session, tenant_id)
    quota = settings.tenant_max_queued_jobs
    return TenantLimits(
        max_concurrency=(
            settings.tenant_concurrency
            if tenant.max_concurrency is None
            else tenant.max_concurrency
        ),
        max_queued_jobs=quota,
        queued_jobs=quotas.queued_jobs(uow.session, tenant_id, quota or QUEUED_COUNT_CAP),
        submit_limit=settings.tenant_submit_limit,
        submit_window_seconds=settings.tenant_submit_window_seconds,
    )


@router.patch(
    "/{tenant_id}", response_model=TenantOut, responses=problem_responses(401, 403, 404, 409)
)
def rename_tenant(
    tenant_id: uuid.UUID, body: TenantCreate, login: CurrentLogin, uow: UnitOfWorkDep
) -> TenantOut:
    """Rename a team tenant (owners)."""
    principal = tenant_principal(uow, login, tenant_id)
    return tenant_out(tenants.rename(uow.session, principal, body.name), Role.OWNER)


@router.get(
    "/{tenant_id}/members", response_model=list[MemberOut], responses=problem_responses(401, 404)
)
def list_members(tenant_id: uuid.UUID, login: CurrentLogin, uow: UnitOfWorkDep) -> list[MemberOut]:
    """Members by join date, then pending invitations."""
    tenant_principal(uow, login, tenant_id)
    return [MemberOut.model_validate(m) for m in tenants.members(uow.session, tenant_id)]


@router.post(
    "/{tenant_id}/members",
    status_code=status.HTTP_201_CREATED,
    response_model=MemberOut,
    responses=problem_responses(401, 403, 404, 409, 422, 429),
)
def add_member(
    request: Request,
    tenant_id: uuid.UUID,
    body: MemberCreate,
    login: CurrentLogin,
    uow: UnitOfWorkDep,
) -> MemberOut:
    """Invite someone by email (admins; owners to invite an `owner`). Whether or not
    the address has an account, the answer is the same (`status: invited`) and the
    person joins only with the token the email carries: at registration, or with
    `POST /invitations/accept` once signed in. An invitation dies with the rights of
    whoever sent it (they leave, are removed, or lose the role to grant it)."""
    principal = tenant_principal(uow, login, tenant_id)
    state = app_state(request)
    email = str(body.email)
    added = tenants.add(uow.session, principal, email, body.role)
    # Counted only for an invitation about to be sent, per inviting tenant: refused
    # adds cost nothing and cannot use up another tenant's invitations of an address.
    throttle.check(
        state.kv, state.settings, Action.INVITE, client_ip(request), email, within=str(tenant_id)
    )
    tenant = tenants.get(uow.session, tenant_id)
    subject, text = invitation_email(
        tenant.name, login.user.email, added.member.role.value, added.invitation_token
    )
    queue_email(uow.session, uow, state.settings, to=email, subject=subject, text=text)
    return MemberOut.model_validate(added.member)


@router.patch(
    "/{tenant_id}/members/{user_id}",
    response_model=MemberOut,
    responses=problem_responses(401, 403, 404, 409, 422),
)
def change_role(
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    body: MemberUpdate,
    login: CurrentLogin,
    uow: UnitOfWorkDep,
) -> MemberOut:
    """Change a member's role. The last owner cannot give up ownership."""
    principal = tenant_principal(uow, login, tenant_id)
    return MemberOut.model_validate(tenants.change_role(uow.session, principal, user_id, body.role))


@router.delete(
    "/{tenant_id}/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 409),
)
def remove_member(
    tenant_id: uuid.UUID, user_id: uuid.UUID, login: CurrentLogin, uow: UnitOfWorkDep
) -> Response:
    """Remove a member (admins), or leave (your own id). The last owner cannot leave.
    API keys the member created are revoked."""
    principal = tenant_principal(uow, login, tenant_id)
    tenants.remove(uow.session, principal, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/{tenant_id}/invitations/{invitation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404),
)
def cancel_invitation(
    tenant_id: uuid.UUID, invitation_id: uuid.UUID, login: CurrentLogin, uow: UnitOfWorkDep
) -> Response:
    principal = tenant_principal(uow, login, tenant_id)
    tenants.cancel_invitation(uow.session, principal, invitation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
