"""One workflow run with the Agents SDK: the model, the uploads' text and the observer
come from outside, so unit tests run it with a scripted model and a list of events."""

from __future__ import annotations

from agents import Model, ModelSettings, RunConfig, Runner
from pydantic import BaseModel, ValidationError

from core.agents.workflows import WORKFLOWS, AgentRunOutput, Usage
from core.jobs.submit import find_unstorable
from worker.errors import PermanentJobError
from worker.jobs.agents_run.library import Library
from worker.jobs.agents_run.observer import ObservingHooks, RunObserver
from worker.jobs.agents_run.workflows import AGENTS
from worker.jobs.agents_run.workflows.deps import RunDeps


async def run_workflow(
    workflow: str,
    data: BaseModel,
    library: Library,
    model: Model,
    observer: RunObserver,
    *,
    max_turns: int,
    tracing: bool = False,
    store: bool = False,
) -> AgentRunOutput:
    agents = AGENTS[workflow]
    result = await Runner.run(
        agents.entry,
        agents.prompt(data, library),
        context=RunDeps(library=library),
        max_turns=max_turns,
        hooks=ObservingHooks(observer),
        run_config=RunConfig(
            model=model,
            tracing_disabled=not tracing,
            # Prompts and outputs hold the tenant's documents: never in traces.
            trace_include_sensitive_data=False,
            workflow_name=f"conveyor.{workflow}",
            model_settings=ModelSettings(store=store),
        ),
    )
    contract = WORKFLOWS[workflow].output_model
    try:
        raw = result.final_output
        output = contract.model_validate(raw.model_dump() if isinstance(raw, BaseModel) else raw)
        output = agents.check(data, output)
        # PostgreSQL cannot keep some text (a NUL, say); the result must be storable.
        if unstorable := find_unstorable(output.model_dump(mode="json"), "output"):
            raise ValueError(" ".join(unstorable))
    except (ValidationError, ValueError) as exc:
        raise PermanentJobError(
            f"The model's answer does not fit the {workflow!r} output: {_first_line(exc)}",
            type="invalid_model_output",
        ) from exc
    usage = result.context_wrapper.usage
    return AgentRunOutput(
        workflow=workflow,
        output=output.model_dump(mode="json"),
        final_agent=result.last_agent.name,
        usage=Usage(
            requests=usage.requests,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            total_tokens=usage.total_tokens,
        ),
    )


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:500] if str(exc).strip() else type(exc).__name__
