"""agents.run: one run of an agent workflow (see `execute`)."""

from __future__ import annotations

from core.agents.workflows import AgentRunInput, AgentRunOutput
from core.jobs.contracts import AGENT_RUN
from worker.context import JobContext

KIND = AGENT_RUN


def handle(ctx: JobContext, data: AgentRunInput) -> AgentRunOutput:
    # Imported on the first run: the Agents SDK and the OpenAI client add about 50 MB
    # to a process, which workers that never run agents (default, uploads) do without.
    from worker.jobs.agents_run.execute import execute

    return execute(ctx, data)
