"""A typed Python client for Conveyor's public API (docs/client.md). It imports nothing
else of Conveyor's, so any program can use it:

    from core.client import Client

    with Client("https://conveyor.example.com", api_key="cvk_…") as conveyor:
        job = conveyor.jobs.submit("diagnostics.echo", {"hello": "world"})
        print(conveyor.jobs.wait(job.id).result)
"""

from core.client.aio import AsyncClient
from core.client.errors import APIError
from core.client.models import (
    TERMINAL_STATUSES,
    BatchItem,
    Job,
    JobEvent,
    JobSummary,
    Upload,
    UploadCreated,
    UploadDetail,
)
from core.client.sync import Client

__all__ = [
    "TERMINAL_STATUSES",
    "APIError",
    "AsyncClient",
    "BatchItem",
    "Client",
    "Job",
    "JobEvent",
    "JobSummary",
    "Upload",
    "UploadCreated",
    "UploadDetail",
]
