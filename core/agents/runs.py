"""Submitting an agent run: a job of kind `agents.run`, checked before anything is
queued (the workflow exists, a model is configured, the input fits, every upload it
reads belongs to the tenant and has text)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from core.agents.workflows import WORKFLOWS, Workflow
from core.errors import ConveyorError, ErrorCode
from core.identity.access import Principal, Scope
from core.jobs.contracts import AGENT_RUN
from core.jobs.submit import Publisher, Submitted, invalid_input, key_used, submit
from core.settings import Settings
from core.uploads.extracted_text import texts_of


def get_workflow(name: str) -> Workflow:
    workflow = WORKFLOWS.get(name)
    if workflow is None:
        raise ConveyorError(
            ErrorCode.WORKFLOW_NOT_FOUND,
            f"No agent workflow named {name!r}",
            known_workflows=sorted(WORKFLOWS),
        )
    return workflow


def submit_run(
    session: Session,
    publisher: Publisher,
    settings: Settings,
    principal: Principal,
    workflow_name: str,
    raw_input: dict[str, Any],
    idempotency_key: str | None = None,
) -> Submitted:
    workflow = get_workflow(workflow_name)
    if not settings.agents_configured:
        # Refused here rather than failed by a worker: nothing is queued that cannot run.
        raise ConveyorError(ErrorCode.AGENTS_NOT_CONFIGURED)
    try:
        data = workflow.input_model.model_validate(raw_input)
    except ValidationError as exc:
        raise invalid_input(exc, workflow.name) from exc
    if workflow.upload_ids(data):
        # The run's answer is made of what the uploads hold.
        principal.require_scope(Scope.UPLOADS_READ)
    if idempotency_key is None or not key_used(session, principal.tenant_id, idempotency_key):
        # A repeated request answers with its job even if an upload went since.
        texts_of(session, principal.tenant_id, workflow.upload_ids(data))
    return submit(
        session,
        publisher,
        tenant_id=principal.tenant_id,
        user_id=principal.user_id,
        kind_name=AGENT_RUN,
        raw_input={"workflow": workflow.name, "input": data.model_dump(mode="json")},
        settings=settings,
        idempotency_key=idempotency_key,
    )
