"""Agent workflows: the contract the API shows and validates against (name, description,
input and output models). The agents themselves live in `worker/jobs/agents_run/`; this
module never imports the Agents SDK, so the API does not either.

Every workflow runs as one job of kind `agents.run` whose input is `{workflow, input}`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_MESSAGE_CHARS = 8000
MAX_FOCUS_CHARS = 500
MAX_ASK_UPLOADS = 10


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Output models are what the model must produce: the SDK sends their JSON Schema as a
# strict structured-output format, which allows no defaults and no open objects.


class DocumentSummaryInput(_Strict):
    upload_id: uuid.UUID = Field(description="A processed upload that has text (not an image).")
    focus: str | None = Field(
        default=None, max_length=MAX_FOCUS_CHARS, description="What the summary should stress."
    )


class DocumentSummaryOutput(_Strict):
    title: str
    summary: str
    key_points: list[str]
    entities: list[str] = Field(description="People, organisations, places and products named.")


class TriageInput(_Strict):
    message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)


class TriageOutput(_Strict):
    category: Literal["billing", "technical", "general"]
    answer: str
    confidence: float = Field(ge=0, le=1)


class AskFilesInput(_Strict):
    upload_ids: list[uuid.UUID] = Field(min_length=1, max_length=MAX_ASK_UPLOADS)
    question: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)

    @model_validator(mode="after")
    def _distinct(self) -> AskFilesInput:
        if len(set(self.upload_ids)) != len(self.upload_ids):
            raise ValueError("upload_ids must not repeat")
        return self


class Citation(_Strict):
    upload_id: uuid.UUID
    quote: str


class AskFilesOutput(_Strict):
    answer: str
    citations: list[Citation]


@dataclass(frozen=True)
class Workflow:
    name: str
    description: str
    input_model: type[BaseModel]
    output_model: type[BaseModel]

    def upload_ids(self, data: BaseModel) -> list[uuid.UUID]:
        """The uploads a run reads: checked at submit to belong to the tenant and to
        have text."""
        if isinstance(data, DocumentSummaryInput):
            return [data.upload_id]
        if isinstance(data, AskFilesInput):
            return list(data.upload_ids)
        return []


WORKFLOWS: dict[str, Workflow] = {
    workflow.name: workflow
    for workflow in (
        Workflow(
            name="document_summary",
            description="Reads a processed upload page by page and summarises it: title, "
            "summary, key points and the entities it names.",
            input_model=DocumentSummaryInput,
            output_model=DocumentSummaryOutput,
        ),
        Workflow(
            name="triage",
            description="A triage agent reads a customer message and hands it to a billing, "
            "technical or general specialist, who answers.",
            input_model=TriageInput,
            output_model=TriageOutput,
        ),
        Workflow(
            name="ask_files",
            description="Answers a question from up to 10 processed uploads, searching their "
            "text, and cites the passages it used.",
            input_model=AskFilesInput,
            output_model=AskFilesOutput,
        ),
    )
}


class AgentRunInput(_Strict):
    """The input of an `agents.run` job."""

    workflow: str
    input: dict[str, Any]

    @model_validator(mode="after")
    def _known_and_valid(self) -> AgentRunInput:
        workflow = WORKFLOWS.get(self.workflow)
        if workflow is None:
            raise ValueError(f"unknown workflow; known: {', '.join(sorted(WORKFLOWS))}")
        workflow.input_model.model_validate(self.input)
        return self


class Usage(_Strict):
    requests: int
    input_tokens: int
    output_tokens: int
    total_tokens: int


class AgentRunOutput(_Strict):
    workflow: str
    output: dict[str, Any] = Field(description="The workflow's structured output.")
    final_agent: str = Field(description="The agent that produced the output.")
    usage: Usage
