"""diagnostics.echo: returns its input, to check a deployment end to end."""

from __future__ import annotations

from core.jobs.contracts import EchoInput, EchoOutput
from worker.context import JobContext

KIND = "diagnostics.echo"


def handle(_ctx: JobContext, data: EchoInput) -> EchoOutput:
    return EchoOutput.model_validate(data.model_dump())
