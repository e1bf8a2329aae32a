from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class WorkflowOut(BaseModel):
    name: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] = Field(
        description="The schema of `result.output` of the run's job."
    )


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: dict[str, Any] = Field(examples=[{"message": "I was charged twice this month."}])
