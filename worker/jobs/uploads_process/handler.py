"""uploads.process: read an uploaded file by its type, store what can be derived from
it (extracted text, a thumbnail) and report what it is and what is in it."""

from __future__ import annotations

import hashlib
import tempfile
import uuid
from pathlib import Path

from sqlalchemy import select, update

from core.errors import ConveyorError
from core.jobs.contracts import UPLOAD_PROCESS, DerivedFile, UploadProcessInput, UploadProcessOutput
from core.models import Upload
from core.storage import StorageError
from core.uploads import quota
from core.uploads.keys import derived_key, upload_prefix
from worker.context import JobContext
from worker.errors import PermanentJobError, storage_failure
from worker.jobs.uploads_process.processors import process

KIND = UPLOAD_PROCESS
HASH_CHUNK = 1 << 20


def _load(ctx: JobContext, upload_id: uuid.UUID) -> Upload | None:
    # The job's tenant, not the input alone, decides what may be read.
    with ctx.db.transaction() as session:
        upload = session.scalar(
            select(Upload).where(Upload.id == upload_id, Upload.tenant_id == ctx.tenant_id)
        )
        if upload is not None:
            session.expunge(upload)
        return upload


def _digest(ctx: JobContext, path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(HASH_CHUNK):
            sha.update(chunk)
            ctx.checkpoint()
    return sha.hexdigest()


def handle(ctx: JobContext, data: UploadProcessInput) -> UploadProcessOutput:
    upload = _load(ctx, data.upload_id)
    if upload is None:
        raise PermanentJobError("The upload no longer exists", type="upload_not_found")
    storage = ctx.storage
    with tempfile.TemporaryDirectory(prefix="conveyor-upload-") as tmp:
        original, work_dir = Path(tmp) / "original", Path(tmp) / "derived"
        work_dir.mkdir()
        try:
            info = storage.download(upload.storage_key, original)
        except StorageError as exc:
            raise storage_failure(exc, "downloading the file") from exc
        # Streamed uploads were hashed by the API on the way in; direct ones are here.
        sha256 = upload.sha256 or _digest(ctx, original)
        processed = process(original, upload.content_type, work_dir, ctx.progress)
        _count_against_quota(ctx, upload, sum(i.path.stat().st_size for i in processed.derived))
        derived = []
        for item in processed.derived:
            key = derived_key(upload.tenant_id, upload.id, item.name)
            try:
                stored = storage.put_file(key, item.path, item.content_type)
            except StorageError as exc:
                raise storage_failure(exc, "storing a derived file") from exc
            derived.append(
                DerivedFile(name=item.name, content_type=item.content_type, size=stored.size)
            )
    _record_digest(ctx, upload, sha256)
    return UploadProcessOutput(
        kind=processed.kind,
        content_type=upload.content_type,
        size=info.size,
        sha256=sha256,
        summary=processed.summary,
        derived=derived,
    )


def _count_against_quota(ctx: JobContext, upload: Upload, derived_bytes: int) -> None:
    """Count the derived files against the tenant's storage quota before storing them,
    in place of what an earlier attempt counted; past the quota the job fails and
    stores nothing."""
    tenant_id = upload.tenant_id
    with ctx.db.transaction() as session:
        counted = session.scalar(
            select(Upload.derived_bytes).where(
                Upload.id == upload.id, Upload.tenant_id == tenant_id
            )
        )
        if counted is None:
            return  # deleted meanwhile: _record_digest cleans up
        try:
            quota.check_room(session, ctx.settings, tenant_id, derived_bytes - counted)
        except ConveyorError as exc:
            raise PermanentJobError(str(exc), type="storage_quota_exceeded") from exc
        session.execute(
            update(Upload)
            .where(Upload.id == upload.id, Upload.tenant_id == tenant_id)
            .values(derived_bytes=derived_bytes)
        )


def _record_digest(ctx: JobContext, upload: Upload, sha256: str) -> None:
    """Fill in the digest of a direct upload; and if the upload was deleted while this
    ran, remove what this run stored, so nothing of it outlives the delete."""
    with ctx.db.transaction() as session:
        row = session.get(Upload, upload.id, with_for_update=True)
        if row is not None and row.tenant_id == upload.tenant_id:
            if row.sha256 is None:
                row.sha256 = sha256
            return
    ctx.storage.delete_prefix(upload_prefix(upload.tenant_id, upload.id))
    raise PermanentJobError("The upload was deleted while it was processed", type="upload_deleted")
