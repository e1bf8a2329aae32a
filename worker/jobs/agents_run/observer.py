"""The run as job events: which agent is active, each model turn with its token counts,
each tool call and result, each handoff. Each event is also where a cancel is noticed:
after a model turn the run goes no further, so it stops without starting another."""

# The hooks keep the SDK's signatures, whether or not they use every argument.
# ruff: noqa: ARG002

from __future__ import annotations

import json
from typing import Any, Protocol

from agents import Agent, RunContextWrapper, RunHooks, Tool
from agents.items import ModelResponse
from agents.run_context import AgentHookContext
from agents.tool_context import ToolContext

from core.jobs.states import EventType

# Tool arguments and outputs can be whole pages of text; events keep the start.
MAX_EVENT_TEXT = 4096


class RunObserver(Protocol):
    """Where events go (a job's event log; a list in unit tests). Either method raises
    to stop the run (the job was cancelled or lost its lease)."""

    def event(self, type_: EventType, data: dict[str, Any]) -> None: ...

    def checkpoint(self, *, now: bool = False) -> None: ...


def clip(value: object, limit: int = MAX_EVENT_TEXT) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(text) <= limit:
        return text
    return text[:limit] + f"… [{len(text) - limit} more characters]"


class ObservingHooks(RunHooks[Any]):
    def __init__(self, observer: RunObserver) -> None:
        self._observer = observer
        self._turns = 0

    async def on_agent_start(self, context: AgentHookContext[Any], agent: Agent[Any]) -> None:
        self._observer.event(EventType.AGENT, {"agent": agent.name})

    async def on_llm_start(
        self,
        context: RunContextWrapper[Any],
        agent: Agent[Any],
        system_prompt: str | None,
        input_items: list[Any],
    ) -> None:
        # A cancel that arrived while a tool ran stops the run before another request.
        self._observer.checkpoint(now=True)

    async def on_llm_end(
        self, context: RunContextWrapper[Any], agent: Agent[Any], response: ModelResponse
    ) -> None:
        self._turns += 1
        usage = response.usage
        self._observer.event(
            EventType.MODEL_TURN,
            {
                "agent": agent.name,
                "turn": self._turns,
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "total_tokens": usage.total_tokens,
            },
        )

    async def on_tool_start(
        self, context: RunContextWrapper[Any], agent: Agent[Any], tool: Tool
    ) -> None:
        data: dict[str, Any] = {"agent": agent.name, "tool": tool.name}
        if isinstance(context, ToolContext):
            data["call_id"] = context.tool_call_id
            data["arguments"] = clip(context.tool_arguments)
        self._observer.event(EventType.TOOL_CALL, data)

    async def on_tool_end(
        self, context: RunContextWrapper[Any], agent: Agent[Any], tool: Tool, result: object
    ) -> None:
        data: dict[str, Any] = {"agent": agent.name, "tool": tool.name, "output": clip(result)}
        if isinstance(context, ToolContext):
            data["call_id"] = context.tool_call_id
        self._observer.event(EventType.TOOL_RESULT, data)

    async def on_handoff(
        self, context: RunContextWrapper[Any], from_agent: Agent[Any], to_agent: Agent[Any]
    ) -> None:
        self._observer.event(EventType.HANDOFF, {"from": from_agent.name, "to": to_agent.name})
