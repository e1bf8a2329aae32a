"""diagnostics.echo: returns its input, to check a deployment end to end."""

from __future__ import annotations

from core.jobs.contracts import ECHO, EchoInput, EchoOutput
from worker.context import JobContext

KIND = ECHO


def handle(_ctx: JobContext, data: EchoInput) -> EchoOutput:
    return EchoOutput.model_validate(data.model_dump())
