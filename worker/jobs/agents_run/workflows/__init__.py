"""The agents behind each workflow of `core.agents.workflows`, by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agents import Agent
from pydantic import BaseModel

from core.agents.workflows import WORKFLOWS
from worker.jobs.agents_run.library import Library
from worker.jobs.agents_run.workflows import ask_files, document_summary, triage
from worker.jobs.agents_run.workflows.deps import RunDeps


@dataclass(frozen=True)
class WorkflowAgents:
    # The agent the run starts with; handoffs may pass the run to others.
    entry: Agent[RunDeps]
    # The first user message, made from the workflow's input.
    prompt: Callable[[Any, Library], str]
    # Checks the model's output beyond its schema; returns it, or raises ValueError.
    check: Callable[[Any, Any], BaseModel] = lambda _data, output: output


AGENTS: dict[str, WorkflowAgents] = {
    "document_summary": WorkflowAgents(document_summary.SUMMARIZER, document_summary.prompt),
    "triage": WorkflowAgents(triage.TRIAGE, triage.prompt),
    "ask_files": WorkflowAgents(ask_files.RESEARCHER, ask_files.prompt, ask_files.check),
}

if set(AGENTS) != set(WORKFLOWS):
    raise RuntimeError(
        f"workflows without agents: {sorted(set(WORKFLOWS) - set(AGENTS))}; "
        f"agents without a workflow contract: {sorted(set(AGENTS) - set(WORKFLOWS))}"
    )
