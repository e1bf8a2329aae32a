"""Uploads: files streamed to storage (or sent there directly), processed by a job,
read back and deleted. Every route is scoped to the active tenant."""

from __future__ import annotations

import hmac
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.responses import RedirectResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from api.deps import UnitOfWorkDep, UploadsRead, UploadsWrite
from api.schemas.problem import problem_responses
from api.schemas.strings import NulFreeStr
from api.schemas.uploads import (
    DerivedOut,
    PresignedUpload,
    PresignRequest,
    UploadCreated,
    UploadDetail,
    UploadOut,
    UploadPage,
)
from api.state import AppState, app_state
from api.upload_stream import receive_file
from core.errors import ConveyorError, ErrorCode
from core.identity.credentials import upload_signature
from core.jobs import quotas
from core.jobs.views import JobOut
from core.models import Upload, UploadStatus
from core.storage import StorageError, UploadSink, content_disposition
from core.uploads import quota
from core.uploads import service as upload_service
from core.uploads.keys import DERIVED_NAME, derived_key, incoming_key, upload_key, upload_prefix
from core.uploads.sniff import SNIFF_BYTES, sniff

router = APIRouter(prefix="/uploads", tags=["uploads"])

# Routes whose bodies are files (see the middleware's body limit).
UPLOAD_BODY_PATHS = re.compile(r"^/api/v1/uploads(/[^/]+/data)?$")
MAX_PAGE = 100


def _storage_unavailable(exc: StorageError) -> ConveyorError:
    if exc.transient:
        return ConveyorError(
            ErrorCode.SERVICE_UNAVAILABLE, "Storage is unavailable; try again shortly"
        )
    return ConveyorError(ErrorCode.SERVICE_UNAVAILABLE, "Storage refused the request")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=UploadCreated,
    responses=problem_responses(401, 403, 404, 413, 422, 429, 503),
)
async def create_upload(
    request: Request, principal: UploadsWrite, uow: UnitOfWorkDep
) -> UploadCreated:
    """Upload a file as `multipart/form-data` (part `file`), up to `MAX_UPLOAD_BYTES`.
    It streams to storage as it arrives; the answer is the upload and its processing
    job. The content type is sniffed from the bytes; the file name is kept for display."""
    state = app_state(request)
    # Its processing is a job: refused before a byte is stored.
    await run_in_threadpool(
        quotas.check_submit, uow.session, state.kv, state.settings, principal.tenant_id
    )
    declared = _declared_file_bytes(request)
    if declared:  # a body that cannot fit is refused before it is read
        await run_in_threadpool(
            quota.check_room,
            uow.session,
            state.settings,
            principal.tenant_id,
            declared,
            lock=False,
        )
    # The caller is known: end the transaction so no database connection is held
    # while the body streams, which can take minutes.
    await run_in_threadpool(uow.session.commit)
    upload_id = uuid.uuid4()
    key = upload_key(principal.tenant_id, upload_id)

    def open_sink(content_type: str) -> UploadSink:
        return state.storage.open_sink(key, content_type)

    try:
        received = await receive_file(
            request.stream(),
            request.headers.get("content-type"),
            open_sink,
            max_bytes=state.settings.max_upload_bytes,
            part_size=state.settings.s3_part_size_bytes,
        )
    except StorageError as exc:
        raise _storage_unavailable(exc) from exc
    new = upload_service.NewUpload(
        upload_id=upload_id,
        filename=upload_service.display_filename(received.filename),
        content_type=received.content_type,
        declared_content_type=received.declared_type,
        size=received.size,
        sha256=received.sha256,
        storage_key=key,
    )
    try:
        upload, submitted = await run_in_threadpool(
            upload_service.add_stored, uow.session, uow, state.settings, principal, new
        )
        # Committed here, so a failed commit still removes the stored object; then
        # dispatched, so the answer shows whether its job got one of the slots.
        await run_in_threadpool(uow.finish, state)
    except BaseException:
        # The row never made it: the object must not outlive it.
        await run_in_threadpool(
            state.storage.delete_prefix, upload_prefix(principal.tenant_id, upload_id)
        )
        raise
    return UploadCreated(
        upload=UploadOut.model_validate(upload),
        job=JobOut.seen_by(submitted.job, principal),
    )


# More than the multipart envelope around a file ever takes: what is left of a declared
# Content-Length is a floor on the file's size.
_ENVELOPE_BYTES = 64 * 1024


def _declared_file_bytes(request: Request) -> int:
    try:
        length = int(request.headers.get("content-length", ""))
    except ValueError:
        return 0
    return max(0, length - _ENVELOPE_BYTES)


@router.post(
    "/presign",
    status_code=status.HTTP_201_CREATED,
    response_model=PresignedUpload,
    responses=problem_responses(401, 403, 404, 413, 422, 429, 503),
)
def presign_upload(
    request: Request, body: PresignRequest, principal: UploadsWrite, uow: UnitOfWorkDep
) -> PresignedUpload:
    """Upload straight to storage: PUT the bytes to `url` with `headers`, then call
    `POST /uploads/{upload_id}/complete`."""
    state = app_state(request)
    limit = state.settings.max_upload_bytes
    if body.size > limit:
        raise ConveyorError(
            ErrorCode.PAYLOAD_TOO_LARGE, f"The file may be at most {limit} bytes", max_bytes=limit
        )
    quotas.check_submit(uow.session, state.kv, state.settings, principal.tenant_id)
    upload_id = uuid.uuid4()
    key = upload_key(principal.tenant_id, upload_id)
    lifetime = state.settings.upload_url_seconds
    try:
        presigned = state.storage.presign_put(
            incoming_key(principal.tenant_id, upload_id), body.size, body.content_type, lifetime
        )
    except StorageError as exc:
        raise _storage_unavailable(exc) from exc
    expires = int(time.time()) + lifetime
    if presigned is None:  # local disk: this API receives the bytes itself
        signature = upload_signature(state.settings, upload_id, expires)
        url = str(
            request.url_for("put_upload_data", upload_id=str(upload_id)).include_query_params(
                expires=expires, signature=signature
            )
        )
        headers = {"Content-Type": body.content_type, "Content-Length": str(body.size)}
    else:
        url, headers = presigned.url, presigned.headers
    upload_service.add_pending(
        uow.session,
        state.settings,
        principal,
        upload_service.NewUpload(
            upload_id=upload_id,
            filename=upload_service.display_filename(body.filename),
            content_type="application/octet-stream",  # sniffed on completion
            declared_content_type=body.content_type,
            size=body.size,
            sha256=None,
            storage_key=key,
        ),
    )
    return PresignedUpload(
        upload_id=upload_id,
        url=url,
        headers=headers,
        expires_at=datetime.fromtimestamp(expires, UTC),
    )


@router.put(
    "/{upload_id}/data",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(403, 404, 413),
    include_in_schema=False,
)
async def put_upload_data(
    request: Request,
    upload_id: uuid.UUID,
    expires: Annotated[int, Query()],
    signature: Annotated[NulFreeStr, Query(max_length=128)],
) -> Response:
    """The local-disk stand-in for a presigned PUT: the signature is the authority."""
    state = app_state(request)
    expected = upload_signature(state.settings, upload_id, expires)
    if expires < time.time() or not hmac.compare_digest(expected, signature):
        raise ConveyorError(ErrorCode.INVALID_TOKEN, "The upload URL is invalid or expired")
    upload = await run_in_threadpool(_pending_upload, state, upload_id)
    key = incoming_key(upload.tenant_id, upload.id)
    try:
        sink = await run_in_threadpool(state.storage.open_sink, key, "application/octet-stream")
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > upload.size:
                    raise ConveyorError(
                        ErrorCode.PAYLOAD_TOO_LARGE,
                        f"The upload was announced as {upload.size} bytes",
                    )
                if chunk:
                    await run_in_threadpool(sink.write, chunk)
            await run_in_threadpool(sink.complete)
        except BaseException:
            await run_in_threadpool(sink.abort)
            raise
    except StorageError as exc:
        raise _storage_unavailable(exc) from exc
    except ClientDisconnect as exc:
        raise ConveyorError(ErrorCode.BAD_REQUEST, "The client went away mid-upload") from exc
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _pending_upload(state: AppState, upload_id: uuid.UUID) -> Upload:
    with state.db.transaction() as session:
        upload = session.get(Upload, upload_id)
        if upload is None or upload.status != UploadStatus.PENDING:
            raise ConveyorError(ErrorCode.UPLOAD_NOT_FOUND)
        session.expunge(upload)
        return upload


@router.post(
    "/{upload_id}/complete",
    response_model=UploadCreated,
    responses=problem_responses(401, 403, 404, 409, 503),
)
def complete_upload(
    request: Request, upload_id: uuid.UUID, principal: UploadsWrite, uow: UnitOfWorkDep
) -> UploadCreated:
    """Check the directly uploaded object is there with the announced size, then
    process it. Completing twice answers the same upload and job."""
    state = app_state(request)
    upload = upload_service.get(uow.session, principal.tenant_id, upload_id, lock=True)
    job = upload_service.latest_job(uow.session, upload)
    if upload.status == UploadStatus.STORED and job is not None:
        return UploadCreated(
            upload=UploadOut.model_validate(upload),
            job=JobOut.seen_by(job, principal),
        )
    incoming = incoming_key(upload.tenant_id, upload.id)
    try:
        info = state.storage.head(incoming)
        upload_service.check_size(upload, info.size if info is not None else None)
        # Moved before it is read, so later PUTs to the same URL cannot change it.
        state.storage.move(incoming, upload.storage_key, "application/octet-stream")
        chunks = state.storage.iter_chunks(upload.storage_key, SNIFF_BYTES)
        head = next(chunks, b"")
        chunks.close()
    except StorageError as exc:
        raise _storage_unavailable(exc) from exc
    submitted = upload_service.complete(
        uow.session, uow, state.settings, upload, sniff(head, upload.filename)
    )
    uow.finish(state)  # so the answer shows whether its job got one of the slots
    return UploadCreated(
        upload=UploadOut.model_validate(upload),
        job=JobOut.seen_by(submitted.job, principal),
    )


@router.get("", response_model=UploadPage, responses=problem_responses(401, 403, 404, 422))
def list_uploads(
    principal: UploadsRead,
    uow: UnitOfWorkDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    cursor: Annotated[NulFreeStr | None, Query(max_length=200)] = None,
) -> UploadPage:
    """Newest first, `limit` at a time; follow `next_cursor` for more."""
    page = upload_service.list_uploads(uow.session, principal.tenant_id, limit=limit, cursor=cursor)
    return UploadPage(
        items=[UploadOut.model_validate(u) for u in page.items], next_cursor=page.next_cursor
    )


@router.get("/{upload_id}", response_model=UploadDetail, responses=problem_responses(401, 404))
def get_upload(
    request: Request, upload_id: uuid.UUID, principal: UploadsRead, uow: UnitOfWorkDep
) -> UploadDetail:
    """The upload, its latest processing job, and the files derived from it."""
    upload = upload_service.get(uow.session, principal.tenant_id, upload_id)
    job = upload_service.latest_job(uow.session, upload)
    derived = [
        DerivedOut(
            **item.model_dump(),
            url=request.url_for("get_derived", upload_id=str(upload.id), name=item.name).path,
        )
        for item in upload_service.derived_files(job)
    ]
    return UploadDetail(
        **UploadOut.model_validate(upload).model_dump(),
        job=JobOut.seen_by(job, principal) if job else None,
        derived=derived,
    )


def _download(
    state: AppState, key: str, filename: str, content_type: str | None, missing: ErrorCode
) -> Response:
    """A redirect to a short-lived presigned URL, or the bytes from local disk; `missing`
    is the error if the object is not in storage."""
    lifetime = 300
    try:
        url = state.storage.presign_get(key, lifetime, filename, content_type)
        if url is not None:
            return RedirectResponse(url, status_code=status.HTTP_307_TEMPORARY_REDIRECT)
        info = state.storage.head(key)
        if info is None:
            raise ConveyorError(missing, "The file is not in storage")
        chunks = state.storage.iter_chunks(key)
    except StorageError as exc:
        raise _storage_unavailable(exc) from exc
    return StreamingResponse(
        chunks,
        media_type=content_type or info.content_type or "application/octet-stream",
        headers={
            "Content-Length": str(info.size),
            "Content-Disposition": content_disposition(filename),
        },
    )


@router.get(
    "/{upload_id}/content",
    responses={307: {"description": "To storage"}, **problem_responses(401, 404, 409, 503)},
)
def get_content(
    request: Request, upload_id: uuid.UUID, principal: UploadsRead, uow: UnitOfWorkDep
) -> Response:
    """The original file, as uploaded."""
    upload = upload_service.get(uow.session, principal.tenant_id, upload_id)
    if upload.status != UploadStatus.STORED:
        raise ConveyorError(ErrorCode.UPLOAD_NOT_READY)
    return _download(
        app_state(request),
        upload.storage_key,
        upload.filename,
        upload.content_type,
        ErrorCode.UPLOAD_NOT_FOUND,
    )


@router.get(
    "/{upload_id}/derived/{name}",
    responses={307: {"description": "To storage"}, **problem_responses(401, 404, 503)},
)
def get_derived(
    request: Request,
    upload_id: uuid.UUID,
    name: Annotated[str, Path(pattern=f"^{DERIVED_NAME.pattern}$")],
    principal: UploadsRead,
    uow: UnitOfWorkDep,
) -> Response:
    """A file derived by processing (`text.txt`, `thumbnail.png`, …)."""
    upload = upload_service.get(uow.session, principal.tenant_id, upload_id)
    job = upload_service.latest_job(uow.session, upload)
    listed = {item.name: item.content_type for item in upload_service.derived_files(job)}
    if name not in listed:
        raise ConveyorError(ErrorCode.DERIVED_NOT_FOUND)
    stem = upload.filename.rsplit(".", 1)[0]
    return _download(
        app_state(request),
        derived_key(upload.tenant_id, upload.id, name),
        f"{stem}.{name}",
        listed[name],
        ErrorCode.DERIVED_NOT_FOUND,
    )


@router.delete(
    "/{upload_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 503),
)
def delete_upload(
    request: Request, upload_id: uuid.UUID, principal: UploadsWrite, uow: UnitOfWorkDep
) -> Response:
    """Cancel the upload's jobs, delete every object it has in storage, then the row."""
    state = app_state(request)
    upload = upload_service.remove(uow.session, principal.tenant_id, upload_id)
    # The row stays locked until the commit, so a job finishing meanwhile waits, then
    # finds it gone and removes anything it stored after this.
    try:
        state.storage.delete_prefix(upload_prefix(upload.tenant_id, upload.id))
    except StorageError as exc:
        raise _storage_unavailable(exc) from exc
    return Response(status_code=status.HTTP_204_NO_CONTENT)
