"""One run of an agent workflow, its steps recorded as job events.

Each run gets an event loop of its own (`asyncio.run`), so it works in a thread pool
(the `agents` queue's I/O-bound workers) and in a prefork child.
"""

from __future__ import annotations

import asyncio
import uuid

from agents import AgentsException, UserError
from pydantic import BaseModel

from core.agents.workflows import WORKFLOWS, AgentRunInput, AgentRunOutput
from core.errors import ConveyorError
from core.storage import StorageError
from core.uploads.extracted_text import texts_of
from worker.context import JobContext
from worker.errors import PermanentJobError, storage_failure
from worker.jobs.agents_run.failures import run_failure
from worker.jobs.agents_run.library import Library, load_document
from worker.jobs.agents_run.model import open_model, tracing_enabled
from worker.jobs.agents_run.run import run_workflow


def execute(ctx: JobContext, data: AgentRunInput) -> AgentRunOutput:
    settings = ctx.settings
    if not settings.agents_configured:
        raise PermanentJobError(
            "No model is configured: set OPENAI_API_KEY or OPENAI_BASE_URL for the workers",
            type="agents_not_configured",
        )
    workflow = WORKFLOWS[data.workflow]
    parsed = workflow.input_model.model_validate(data.input)
    library = _library(ctx, workflow.upload_ids(parsed))
    try:
        return asyncio.run(_run(ctx, data.workflow, parsed, library))
    except Exception as exc:
        cause = own_cause(exc)
        failure = run_failure(cause, settings.agent_max_turns)
        if failure is None:
            raise cause from None
        raise failure from exc


def own_cause(exc: Exception) -> Exception:
    """The SDK wraps what a tool or hook raised (a lost database connection while an
    event is recorded, say) in a UserError; the cause decides whether to retry."""
    cause = exc.__cause__
    if isinstance(exc, UserError) and isinstance(cause, Exception):
        if not isinstance(cause, AgentsException):
            return cause
    return exc


async def _run(ctx: JobContext, workflow: str, data: BaseModel, library: Library) -> AgentRunOutput:
    settings = ctx.settings
    async with open_model(settings) as model:
        limit = asyncio.timeout(settings.agent_run_timeout_seconds)
        try:
            async with limit:
                return await run_workflow(
                    workflow,
                    data,
                    library,
                    model,
                    ctx,
                    max_turns=settings.agent_max_turns,
                    tracing=tracing_enabled(settings),
                    store=settings.openai_store,
                )
        except TimeoutError as exc:
            if not limit.expired():
                raise
            raise PermanentJobError(
                f"The run took longer than {settings.agent_run_timeout_seconds:g} s "
                "(AGENT_RUN_TIMEOUT_SECONDS)",
                type="time_limit_exceeded",
            ) from exc


def _library(ctx: JobContext, upload_ids: list[uuid.UUID]) -> Library:
    """The uploads the run reads, checked again against the job's tenant: one may have
    been deleted since the run was submitted."""
    if not upload_ids:
        return Library([])
    if ctx.tenant_id is None:
        raise PermanentJobError("An agent run needs a tenant", type="no_tenant")
    try:
        with ctx.db.transaction() as session:
            sources = texts_of(session, ctx.tenant_id, upload_ids)
    except ConveyorError as exc:
        raise PermanentJobError(exc.detail, type=exc.error.code) from exc
    try:
        return Library(load_document(ctx.storage, source) for source in sources.values())
    except StorageError as exc:
        raise storage_failure(exc, "reading an upload's text") from exc
