"""A job's task message: the job id as its one argument, and a summary of the job for
the monitor.

Flower shows a task's `argsrepr` and `kwargsrepr` in place of its arguments, so the
summary goes there: the job's kind, tenant, the attempt the message is for, and the
input fields its kind marks as safe to show (`JobKind.shown_fields`). Nothing else of
the input: it may hold a tenant's data or a secret (an email's body with a reset code).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from core.jobs.contracts import KINDS, JobKind
from core.models import Job

# A shown value is cut to this many characters: the summary is a glance, not the input.
MAX_SHOWN_CHARS = 80


# What a job's message is built from (`JobMessage.of_row`).
MESSAGE_COLUMNS = (Job.id, Job.kind, Job.tenant_id, Job.attempts, Job.input, Job.request_id)


@dataclass(frozen=True)
class JobMessage:
    job_id: uuid.UUID
    kind: JobKind
    tenant_id: uuid.UUID | None  # None for system jobs
    # Attempts made so far; the message is for the next one.
    attempts: int
    input: dict[str, Any]
    # The API request that submitted the job, for the worker's log lines about it.
    request_id: str | None = None

    @classmethod
    def of(
        cls,
        job_id: uuid.UUID,
        kind: str,
        tenant_id: uuid.UUID | None,
        attempts: int,
        input: dict[str, Any],  # noqa: A002 - the job's column
        request_id: str | None = None,
    ) -> JobMessage:
        return cls(job_id, KINDS[kind], tenant_id, attempts, input, request_id)

    @classmethod
    def of_row(cls, row: Any) -> JobMessage:
        """From a row selected as `MESSAGE_COLUMNS` (or any with those attributes)."""
        return cls.of(row.id, row.kind, row.tenant_id, row.attempts, row.input, row.request_id)

    def headers(self) -> dict[str, str]:
        """Custom headers of the task message (the worker reads them as `request.<name>`)."""
        return {"request_id": self.request_id} if self.request_id else {}

    def argsrepr(self) -> str:
        return repr([str(self.job_id)])

    def kwargsrepr(self) -> str:
        """What Flower shows as the task's keyword arguments (the task has none)."""
        shown = {
            name: _cut(self.input[name]) for name in self.kind.shown_fields if name in self.input
        }
        summary = {
            "kind": self.kind.name,
            "tenant": str(self.tenant_id) if self.tenant_id else "system",
            "attempt": self.attempts + 1,
            "input": shown,
        }
        return repr(summary)


def _cut(value: Any) -> Any:
    if isinstance(value, bool | int | float) or value is None:
        return value
    text = str(value)
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 1] + "…"
