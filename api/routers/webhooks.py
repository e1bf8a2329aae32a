"""Webhook endpoints of the active tenant: told when its jobs end (docs/webhooks.md).

Members read them and their delivery log; admins and owners manage them. An API key
needs `webhooks:read` or `webhooks:write`.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from api.deps import UnitOfWorkDep, WebhooksRead, WebhooksWrite
from api.responses import accepted, json_response
from api.schemas.problem import problem_responses
from api.schemas.strings import NulFreeStr
from api.schemas.webhooks import (
    AttemptOut,
    AttemptPage,
    SecretRotated,
    WebhookCreate,
    WebhookCreated,
    WebhookOut,
    WebhookUpdate,
)
from api.state import app_state
from core.identity import tenants
from core.identity.access import Principal, Scope
from core.jobs import quotas
from core.jobs.views import JobOut
from core.models import Role
from core.webhooks import deliveries, endpoints

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

MAX_PAGE = 100


def _manager(principal: Principal) -> Principal:
    """A user must be an admin or the owner. An API key needs, beside `webhooks:write`,
    the scopes to read what events carry (every job, its result included): else a key
    could send itself what it may not read."""
    if principal.api_key_id is None:
        principal.require_role(Role.ADMIN)
    else:
        principal.require_scope(Scope.JOBS_READ)
        principal.require_scope(Scope.UPLOADS_READ)
    return principal


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookCreated,
    responses=problem_responses(401, 403, 409, 422),
)
def create_webhook(
    request: Request, body: WebhookCreate, principal: WebhooksWrite, uow: UnitOfWorkDep
) -> Response:
    """An endpoint, sent the events it names from now on. Its signing `secret` is in
    this answer and in no other."""
    _manager(principal)
    # Under the tenant's lock, so concurrent creates cannot pass its limit together.
    tenants.lock_tenant(uow.session, principal)
    endpoint = endpoints.create(
        uow.session,
        app_state(request).settings,
        tenant_id=principal.tenant_id,
        created_by=principal.user_id,
        url=body.url,
        events=[e.value for e in body.events],
        kinds=body.kinds,
        description=body.description,
    )
    out = WebhookOut.model_validate(endpoint)
    return json_response(WebhookCreated(**out.model_dump(), secret=endpoint.secret), 201)


@router.get("", response_model=list[WebhookOut], responses=problem_responses(401, 403))
def list_webhooks(principal: WebhooksRead, uow: UnitOfWorkDep) -> list[WebhookOut]:
    found = endpoints.list_all(uow.session, principal.tenant_id)
    return [WebhookOut.model_validate(e) for e in found]


@router.get("/{webhook_id}", response_model=WebhookOut, responses=problem_responses(401, 403, 404))
def get_webhook(webhook_id: uuid.UUID, principal: WebhooksRead, uow: UnitOfWorkDep) -> WebhookOut:
    return WebhookOut.model_validate(endpoints.get(uow.session, principal.tenant_id, webhook_id))


@router.patch(
    "/{webhook_id}", response_model=WebhookOut, responses=problem_responses(401, 403, 404, 422)
)
def update_webhook(
    request: Request,
    webhook_id: uuid.UUID,
    body: WebhookUpdate,
    principal: WebhooksWrite,
    uow: UnitOfWorkDep,
) -> WebhookOut:
    _manager(principal)
    endpoint = endpoints.get(uow.session, principal.tenant_id, webhook_id)
    endpoints.update(
        uow.session,
        app_state(request).settings,
        endpoint,
        url=body.url,
        events=None if body.events is None else [e.value for e in body.events],
        kinds=body.kinds,
        clear_kinds="kinds" in body.model_fields_set and body.kinds is None,
        description=body.description,
        enabled=body.enabled,
    )
    return WebhookOut.model_validate(endpoint)


@router.delete(
    "/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404),
)
def delete_webhook(webhook_id: uuid.UUID, principal: WebhooksWrite, uow: UnitOfWorkDep) -> Response:
    """The endpoint and its delivery log; deliveries still queued for it fail."""
    _manager(principal)
    endpoints.delete(uow.session, endpoints.get(uow.session, principal.tenant_id, webhook_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{webhook_id}/rotate-secret",
    response_model=SecretRotated,
    responses=problem_responses(401, 403, 404),
)
def rotate_secret(
    request: Request, webhook_id: uuid.UUID, principal: WebhooksWrite, uow: UnitOfWorkDep
) -> SecretRotated:
    """A new signing secret. The old one keeps signing beside it (two signatures in
    `webhook-signature`) until `previous_secret_expires_at`, so a receiver can switch
    without refusing a delivery."""
    _manager(principal)
    endpoint = endpoints.get(uow.session, principal.tenant_id, webhook_id)
    endpoints.rotate_secret(app_state(request).settings, endpoint)
    uow.session.flush()
    assert endpoint.previous_secret_expires_at is not None
    return SecretRotated(
        secret=endpoint.secret, previous_secret_expires_at=endpoint.previous_secret_expires_at
    )


@router.post(
    "/{webhook_id}/test",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses=problem_responses(401, 403, 404, 429),
)
def send_test(
    request: Request, webhook_id: uuid.UUID, principal: WebhooksWrite, uow: UnitOfWorkDep
) -> Response:
    """Send a `webhook.test` event now. The answer is its delivery (a `webhooks.deliver`
    job); the delivery log shows how the receiver answered."""
    _manager(principal)
    state = app_state(request)
    endpoint = endpoints.get(uow.session, principal.tenant_id, webhook_id)
    # A job of the tenant's, made on request: counted as its submits are.
    quotas.check_submit(uow.session, state.kv, state.settings, principal.tenant_id)
    submitted = deliveries.send_test(uow.session, uow, state.settings, endpoint)
    uow.finish(state)  # so the answer shows whether the delivery got one of the slots
    return accepted(submitted, principal)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=AttemptPage,
    responses=problem_responses(401, 403, 404, 422),
)
def list_deliveries(
    webhook_id: uuid.UUID,
    principal: WebhooksRead,
    uow: UnitOfWorkDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    cursor: Annotated[NulFreeStr | None, Query(max_length=200)] = None,
) -> AttemptPage:
    """Every attempt to deliver to the endpoint, newest first: the event, its job, the
    attempt, the status code or the error, the latency and the answer's first KiB."""
    endpoint = endpoints.get(uow.session, principal.tenant_id, webhook_id)
    page = deliveries.attempts(
        uow.session, principal.tenant_id, endpoint.id, limit=limit, cursor=cursor
    )
    return AttemptPage(
        items=[AttemptOut.model_validate(a) for a in page.items], next_cursor=page.next_cursor
    )


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses=problem_responses(401, 403, 404, 429),
)
def redeliver(
    request: Request,
    webhook_id: uuid.UUID,
    delivery_id: uuid.UUID,
    principal: WebhooksWrite,
    uow: UnitOfWorkDep,
) -> Response:
    """Send a delivery's event again, with the same `webhook-id`: a new delivery,
    whatever became of the first."""
    _manager(principal)
    state = app_state(request)
    endpoint = endpoints.get(uow.session, principal.tenant_id, webhook_id)
    quotas.check_submit(uow.session, state.kv, state.settings, principal.tenant_id)
    submitted = deliveries.redeliver(uow.session, uow, state.settings, endpoint, delivery_id)
    uow.finish(state)  # so the answer shows whether the delivery got one of the slots
    return accepted(submitted, principal)
