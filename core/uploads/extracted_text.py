"""Where the text of a processed upload is: its extracted text (PDF) or the file itself
(text, Markdown, CSV, JSON), with the encoding processing found. Agent runs read it;
the API checks at submit that every upload a run names has some.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import ConveyorError, ErrorCode
from core.models import Job, Upload
from core.uploads.keys import derived_key
from core.uploads.service import processing_output

# The derived object holding a PDF's extracted text (UTF-8, pages split by form feeds).
EXTRACTED_TEXT_NAME = "text.txt"
# Kinds whose original file is itself text.
TEXT_KINDS = frozenset({"text", "markdown", "csv", "json"})


@dataclass(frozen=True)
class UploadText:
    upload_id: uuid.UUID
    filename: str
    key: str
    encoding: str


def text_of(upload: Upload, job: Job | None) -> UploadText | None:
    """The upload's text, once its processing job has succeeded; None for an image, or
    an upload not (yet) processed."""
    output = processing_output(job)
    if output is None:
        return None
    if any(item.name == EXTRACTED_TEXT_NAME for item in output.derived):
        key = derived_key(upload.tenant_id, upload.id, EXTRACTED_TEXT_NAME)
        return UploadText(upload.id, upload.filename, key, "utf-8")
    if output.kind in TEXT_KINDS:
        encoding = output.summary.get("encoding") or "utf-8"
        return UploadText(upload.id, upload.filename, upload.storage_key, str(encoding))
    return None


def texts_of(
    session: Session, tenant_id: uuid.UUID, upload_ids: list[uuid.UUID]
) -> dict[uuid.UUID, UploadText]:
    """The text of each upload, all in `tenant_id`. One that is missing, another
    tenant's, unprocessed or without text is a 422 naming it: the same answer in each
    case, so nothing is learnt about another tenant's uploads."""
    if not upload_ids:
        return {}
    rows = session.execute(
        select(Upload, Job)
        .outerjoin(Job, (Job.id == Upload.job_id) & (Job.tenant_id == Upload.tenant_id))
        .where(Upload.tenant_id == tenant_id, Upload.id.in_(upload_ids))
    ).all()
    found = {upload.id: text_of(upload, job) for upload, job in rows}
    texts: dict[uuid.UUID, UploadText] = {}
    for upload_id in upload_ids:
        text = found.get(upload_id)
        if text is None:
            raise ConveyorError(
                ErrorCode.UPLOAD_HAS_NO_TEXT,
                f"Upload {upload_id} does not exist, has not been processed yet, or has no "
                "text (an image)",
                upload_id=str(upload_id),
            )
        texts[upload_id] = text
    return texts
