from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from api.schemas.strings import NulFreeStr
from core.jobs.batch import MAX_BATCH_JOBS
from core.jobs.views import JobOut, JobSummary

# How far ahead a job may be delayed.
MAX_DELAY = timedelta(days=7)


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: NulFreeStr = Field(max_length=100, examples=["diagnostics.echo"])
    input: dict[str, Any] = Field(default_factory=dict, examples=[{"hello": "world"}])
    delay_seconds: float | None = Field(
        default=None,
        ge=0,
        le=MAX_DELAY.total_seconds(),
        description="Run it this many seconds from now (at most 7 days).",
    )
    run_after: AwareDatetime | None = Field(
        default=None,
        description="Run it at this time (RFC 3339, with its offset): a time past runs "
        "now; at most 7 days ahead.",
    )

    @model_validator(mode="after")
    def _one_delay(self) -> JobCreate:
        if self.delay_seconds is not None and self.run_after is not None:
            raise ValueError("give delay_seconds or run_after, not both")
        if self.run_after is not None and self.run_after > datetime.now(UTC) + MAX_DELAY:
            raise ValueError("run_after may be at most 7 days ahead")
        return self

    def schedule(self) -> dict[str, Any]:
        """When to run it as the request said: part of what an Idempotency-Key stands
        for (the same `delay_seconds` sent again is the same request)."""
        if self.delay_seconds is not None:
            return {"delay_seconds": self.delay_seconds}
        if self.run_after is not None:
            return {"run_after": self.run_after.isoformat()}
        return {}

    def due(self) -> datetime | None:
        """When the job may run; None for now."""
        if self.delay_seconds:
            return datetime.now(UTC) + timedelta(seconds=self.delay_seconds)
        return self.run_after


class BatchJobCreate(JobCreate):
    """One item of a batch: a job as `POST /jobs` takes it, with its own
    Idempotency-Key."""

    idempotency_key: NulFreeStr | None = Field(default=None, min_length=1, max_length=255)


class BatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jobs: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=MAX_BATCH_JOBS,
        description=f"Up to {MAX_BATCH_JOBS} jobs, each as `POST /jobs` takes it (`kind`, "
        "`input`, `delay_seconds` or `run_after`) with an optional `idempotency_key`. "
        "Each is judged on its own: an invalid one is refused alone.",
        json_schema_extra={"items": BatchJobCreate.model_json_schema()},
    )


class JobPage(BaseModel):
    items: list[JobSummary] = Field(
        description="Without `input` and `result`: read a job for those."
    )
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    type: str
    data: dict[str, Any]
    at: datetime


class EventPage(BaseModel):
    items: list[EventOut]
    next_after: int = Field(description="Pass as `after` to continue; `seq` is dense.")


class JobKindOut(BaseModel):
    name: str
    queue: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]


class BatchAccepted(BaseModel):
    job: JobOut
    replayed: bool = Field(
        default=False, description="An earlier request made it with this Idempotency-Key."
    )


class BatchRefused(BaseModel):
    error: dict[str, Any] = Field(description="Why, as a problem+json body.")


class BatchOut(BaseModel):
    items: list[BatchAccepted | BatchRefused] = Field(description="One per job sent, in order.")
