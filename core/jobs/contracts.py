"""Job kinds: the contract shared by the API (validates, enqueues by name) and the
worker (runs the handler). Adding a kind adds one entry here and one folder in
`worker/jobs/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Queue(StrEnum):
    DEFAULT = "default"
    UPLOADS = "uploads"
    AGENTS = "agents"


@dataclass(frozen=True)
class JobKind:
    name: str
    queue: Queue
    description: str
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    # Hard limit for one attempt; the soft limit fires a little earlier.
    time_limit_seconds: int = 300
    # Internal kinds run only as system jobs (no tenant): clients cannot submit,
    # list or read them.
    internal: bool = False

    @property
    def task_name(self) -> str:
        """The Celery task name; the API sends by name and never imports handlers."""
        return f"{self.name}.run"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EchoInput(BaseModel):
    """Any JSON object; returned unchanged."""

    model_config = ConfigDict(extra="allow")


class EchoOutput(BaseModel):
    model_config = ConfigDict(extra="allow")


MAX_SLEEP_SECONDS = 600


class SleepInput(Strict):
    seconds: float = Field(ge=0, le=MAX_SLEEP_SECONDS, description="How long to sleep.")


class SleepOutput(Strict):
    slept_seconds: float


KINDS: dict[str, JobKind] = {
    kind.name: kind
    for kind in (
        JobKind(
            name="diagnostics.echo",
            queue=Queue.DEFAULT,
            description="Returns its input. Checks the pipeline end to end.",
            input_model=EchoInput,
            output_model=EchoOutput,
            time_limit_seconds=60,
        ),
        JobKind(
            name="diagnostics.sleep",
            queue=Queue.DEFAULT,
            description="Sleeps, with a progress event every second; stops on cancel.",
            input_model=SleepInput,
            output_model=SleepOutput,
            time_limit_seconds=MAX_SLEEP_SECONDS + 60,
        ),
    )
}


def get_kind(name: str) -> JobKind | None:
    return KINDS.get(name)


def public_kinds() -> list[JobKind]:
    """The kinds clients may submit."""
    return [kind for kind in KINDS.values() if not kind.internal]


def longest_time_limit() -> int:
    return max(kind.time_limit_seconds for kind in KINDS.values())
