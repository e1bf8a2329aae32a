"""Agent workflows: list them, start a run. A run is a job (kind `agents.run`): follow
it, read its events and cancel it through /jobs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status

from api.deps import AgentsRun, IdempotencyKey, TenantScope, UnitOfWorkDep
from api.responses import accepted
from api.schemas.agents import RunCreate, WorkflowOut
from api.schemas.problem import problem_responses
from api.schemas.strings import NulFreeStr
from api.state import app_state
from core.agents.runs import submit_run
from core.agents.workflows import WORKFLOWS
from core.jobs import quotas
from core.jobs.views import JobOut

router = APIRouter(tags=["agents"])


@router.get("/agents", response_model=list[WorkflowOut], responses=problem_responses(401))
def list_workflows(_: TenantScope) -> list[WorkflowOut]:
    """The workflows, with the JSON Schema of their input and output."""
    return [
        WorkflowOut(
            name=w.name,
            description=w.description,
            input_schema=w.input_model.model_json_schema(),
            output_schema=w.output_model.model_json_schema(),
        )
        for w in WORKFLOWS.values()
    ]


@router.post(
    "/agents/{workflow}/runs",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses=problem_responses(401, 403, 404, 409, 422, 429, 503),
)
def start_run(
    request: Request,
    workflow: Annotated[NulFreeStr, Path(max_length=100)],
    body: RunCreate,
    scope: AgentsRun,
    uow: UnitOfWorkDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Queue a run of `workflow`; answers its job. The job's events show the run as it
    happens (agents, model turns with token counts, tool calls, handoffs)."""
    state = app_state(request)
    quotas.check_submit(uow.session, state.kv, state.settings, scope.tenant_id, idempotency_key)
    submitted = submit_run(
        uow.session,
        uow,
        state.settings,
        scope,
        workflow,
        body.input,
        idempotency_key,
    )
    uow.finish(state)  # so the answer shows whether the run got one of the slots
    return accepted(submitted, scope)
