"""API keys of the active tenant (`X-Tenant-ID`), managed by its admins and owners."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from api.deps import TenantScope, UnitOfWorkDep
from api.schemas.problem import problem_responses
from api.schemas.tenants import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from core.identity import api_keys, tenants
from core.models import Role

router = APIRouter(prefix="/api-keys", tags=["api keys"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=problem_responses(401, 403, 404, 422),
)
def create_key(body: ApiKeyCreate, principal: TenantScope, uow: UnitOfWorkDep) -> ApiKeyCreated:
    """A key with the given scopes. Its `secret` is in this answer and nowhere else."""
    principal.require_role(Role.ADMIN)
    # Under the tenant's lock, so a key cannot slip past a concurrent demotion or removal.
    tenants.lock_tenant(uow.session, principal)
    key, secret = api_keys.create(uow.session, principal, body.name, body.scopes)
    return ApiKeyCreated.model_validate(
        {**ApiKeyOut.model_validate(key).model_dump(), "secret": secret}
    )


@router.get("", response_model=list[ApiKeyOut], responses=problem_responses(401, 403, 404))
def list_keys(principal: TenantScope, uow: UnitOfWorkDep) -> list[ApiKeyOut]:
    """Every key of the tenant, newest first, revoked ones included."""
    principal.require_role(Role.ADMIN)
    return [
        ApiKeyOut.model_validate(k) for k in api_keys.list_keys(uow.session, principal.tenant_id)
    ]


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404),
)
def revoke_key(key_id: uuid.UUID, principal: TenantScope, uow: UnitOfWorkDep) -> Response:
    """Revoke a key; requests made with it fail from now on."""
    principal.require_role(Role.ADMIN)
    api_keys.revoke(uow.session, principal.tenant_id, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
