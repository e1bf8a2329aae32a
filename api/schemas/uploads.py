from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.strings import Name
from core.jobs.views import JobOut


class DerivedOut(BaseModel):
    name: str
    content_type: str
    size: int
    url: str = Field(description="Download it here (a redirect to storage, or the bytes).")


class UploadOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    filename: str = Field(description="The client's name for the file, for display only.")
    content_type: str = Field(description="Sniffed from the bytes.")
    declared_content_type: str | None = Field(description="What the client said; not trusted.")
    size: int
    sha256: str | None
    status: str = Field(description="`pending` until a direct upload is completed, then `stored`.")
    created_at: datetime
    completed_at: datetime | None


class UploadDetail(UploadOut):
    job: JobOut | None = Field(description="The latest processing job.")
    derived: list[DerivedOut] = Field(description="Files derived by that job, once it succeeded.")


class UploadCreated(BaseModel):
    upload: UploadOut
    job: JobOut


class UploadPage(BaseModel):
    items: list[UploadOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class PresignRequest(BaseModel):
    filename: Name
    size: int = Field(gt=0, description="Exact size in bytes; checked on completion.")
    content_type: str = Field(min_length=1, max_length=255, pattern=r"^[\x21-\x7e][\x20-\x7e]*$")


class PresignedUpload(BaseModel):
    upload_id: uuid.UUID
    url: str = Field(description="PUT the file's bytes here, with `headers`.")
    method: str = "PUT"
    headers: dict[str, str]
    expires_at: datetime
