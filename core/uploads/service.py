"""Upload rows, always within one tenant, and the jobs that process them.

Services flush, never commit; storage is the caller's business, so a row is only
written once its object is safely stored (or, for a direct upload, announced).
"""

from __future__ import annotations

import unicodedata
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from core.errors import ConveyorError, ErrorCode
from core.identity.access import Principal
from core.jobs import lifecycle
from core.jobs.contracts import UPLOAD_PROCESS, DerivedFile, UploadProcessOutput
from core.jobs.states import JobStatus
from core.jobs.submit import Publisher, Submitted, submit
from core.models import Job, Upload, UploadStatus
from core.pagination import decode_cursor, encode_cursor
from core.settings import Settings
from core.uploads import quota

MAX_FILENAME = 255


def display_filename(raw: str | None) -> str:
    """The client's file name, kept for display only: no directories, no control
    characters, NFC, at most 255 characters; never used to build a path or a key."""
    name = unicodedata.normalize("NFC", raw or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    if name in {"", ".", ".."}:
        return "upload"
    if len(name) > MAX_FILENAME:
        stem, dot, ext = name.rpartition(".")
        keep = ext if dot and len(ext) <= 16 else ""
        name = name[: MAX_FILENAME - len(keep) - 1] + "." + keep if keep else name[:MAX_FILENAME]
    return name


@dataclass(frozen=True)
class NewUpload:
    upload_id: uuid.UUID
    filename: str
    content_type: str
    declared_content_type: str | None
    size: int
    sha256: str | None
    storage_key: str


def add_stored(
    session: Session,
    publisher: Publisher,
    settings: Settings,
    principal: Principal,
    new: NewUpload,
) -> tuple[Upload, Submitted]:
    """The row of a file already in storage, with its processing job; 429 if it does not
    fit in the tenant's storage quota."""
    quota.check_room(session, settings, principal.tenant_id, new.size)
    upload = _insert(session, principal, new, UploadStatus.STORED)
    upload.completed_at = datetime.now(UTC)
    return upload, enqueue_processing(session, publisher, settings, upload)


def add_pending(
    session: Session, settings: Settings, principal: Principal, new: NewUpload
) -> Upload:
    """The row of a direct upload the client is about to PUT to storage. Its announced
    size counts against the storage quota from now on (429 if it does not fit)."""
    quota.check_room(session, settings, principal.tenant_id, new.size)
    return _insert(session, principal, new, UploadStatus.PENDING)


def _insert(session: Session, principal: Principal, new: NewUpload, status: str) -> Upload:
    upload = Upload(
        id=new.upload_id,
        tenant_id=principal.tenant_id,
        user_id=principal.user_id,
        filename=new.filename,
        content_type=new.content_type,
        declared_content_type=new.declared_content_type,
        size=new.size,
        sha256=new.sha256,
        storage_key=new.storage_key,
        status=status,
    )
    session.add(upload)
    session.flush()
    return upload


def enqueue_processing(
    session: Session, publisher: Publisher, settings: Settings, upload: Upload
) -> Submitted:
    submitted = submit(
        session,
        publisher,
        tenant_id=upload.tenant_id,
        user_id=upload.user_id,
        kind_name=UPLOAD_PROCESS,
        raw_input={"upload_id": str(upload.id)},
        settings=settings,
    )
    upload.job_id = submitted.job.id
    session.flush()
    return submitted


def check_size(upload: Upload, stored_size: int | None) -> None:
    """A direct upload must be in storage with exactly the announced size."""
    if stored_size is None or stored_size != upload.size:
        found = "no object" if stored_size is None else f"{stored_size} bytes"
        raise ConveyorError(
            ErrorCode.UPLOAD_INCOMPLETE,
            f"Expected {upload.size} bytes in storage, found {found}",
            expected_size=upload.size,
            stored_size=stored_size,
        )


def complete(
    session: Session, publisher: Publisher, settings: Settings, upload: Upload, content_type: str
) -> Submitted:
    """Mark a checked direct upload stored and queue its processing."""
    upload.status = UploadStatus.STORED
    upload.content_type = content_type
    upload.completed_at = datetime.now(UTC)
    return enqueue_processing(session, publisher, settings, upload)


def get(session: Session, tenant_id: uuid.UUID, upload_id: uuid.UUID, lock: bool = False) -> Upload:
    query = select(Upload).where(Upload.id == upload_id, Upload.tenant_id == tenant_id)
    if lock:
        query = query.with_for_update()
    upload = session.scalar(query)
    if upload is None:
        raise ConveyorError(ErrorCode.UPLOAD_NOT_FOUND)
    return upload


def latest_job(session: Session, upload: Upload) -> Job | None:
    if upload.job_id is None:
        return None
    return session.scalar(
        select(Job).where(Job.id == upload.job_id, Job.tenant_id == upload.tenant_id)
    )


def processing_output(job: Job | None) -> UploadProcessOutput | None:
    """What processing found in the upload, once its job has succeeded."""
    if job is None or job.status != JobStatus.SUCCEEDED or job.result is None:
        return None
    return UploadProcessOutput.model_validate(job.result)


def derived_files(job: Job | None) -> list[DerivedFile]:
    """The files processing derived from the upload (extracted text, a thumbnail)."""
    output = processing_output(job)
    return output.derived if output is not None else []


@dataclass(frozen=True)
class Page:
    items: list[Upload]
    next_cursor: str | None


def list_uploads(session: Session, tenant_id: uuid.UUID, *, limit: int, cursor: str | None) -> Page:
    query = select(Upload).where(Upload.tenant_id == tenant_id)
    if cursor:
        created, last_id = decode_cursor(cursor)
        query = query.where(
            or_(
                Upload.created_at < created,
                and_(Upload.created_at == created, Upload.id < last_id),
            )
        )
    rows = list(
        session.scalars(query.order_by(Upload.created_at.desc(), Upload.id.desc()).limit(limit + 1))
    )
    items = rows[:limit]
    more = len(rows) > limit
    return Page(items, encode_cursor(items[-1].created_at, items[-1].id) if more else None)


def remove(session: Session, tenant_id: uuid.UUID, upload_id: uuid.UUID) -> Upload:
    """Delete the row (locked, so a worker finishing now sees it gone) and ask its
    processing jobs to stop; the caller deletes the objects once this has committed."""
    upload = get(session, tenant_id, upload_id, lock=True)
    jobs = session.scalars(
        select(Job.id).where(
            Job.tenant_id == tenant_id,
            Job.kind == UPLOAD_PROCESS,
            Job.input["upload_id"].astext == str(upload_id),
        )
    ).all()
    for job_id in jobs:
        lifecycle.request_cancel(session, tenant_id, job_id)
    session.delete(upload)
    session.flush()
    return upload
