"""One object streamed to S3 as it is written (`S3Storage.open_sink`)."""

from __future__ import annotations

import base64
import hashlib
import io
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from core.storage import Chunk, ObjectInfo, StorageError
from core.storage.s3_errors import translated

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

    from core.storage.s3 import S3Storage

logger = logging.getLogger(__name__)

# S3's limit on the parts of one multipart upload.
MAX_PARTS = 10_000


class S3Sink:
    """Streams one object: parts go up as they fill, so at most one part is held in
    memory. Small objects (under one part) are one put_object, with no multipart upload
    started at all."""

    def __init__(self, storage: S3Storage, key: str, content_type: str) -> None:
        self._storage = storage
        self._key = key
        self._content_type = content_type
        self._buffer = io.BytesIO()
        self._size = 0
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self._done: ObjectInfo | None = None
        self._closed = False

    def write(self, chunk: Chunk) -> None:
        self._check_open()
        part_size = self._storage.part_size
        if self._buffer.tell() == 0 and len(chunk) == part_size:
            # A whole part handed over as it is: sent without another copy in memory.
            self._size += part_size
            self._guarded(lambda: self._upload_part(chunk))
            return
        view = memoryview(chunk)
        while view:
            # Fill the part only up to its size, so a large chunk never grows the buffer.
            room = part_size - self._buffer.tell()
            taken = view[:room]
            self._buffer.write(taken)
            self._size += len(taken)
            view = view[len(taken) :]
            if self._buffer.tell() == part_size:
                self._guarded(self._upload_buffered_part)

    def complete(self) -> ObjectInfo:
        if self._done is not None:
            return self._done
        self._check_open()
        self._guarded(self._finish)
        self._closed = True
        self._buffer = io.BytesIO()
        self._done = ObjectInfo(self._key, self._size, self._content_type)
        return self._done

    def abort(self) -> None:
        if self._done is not None:
            return
        self._closed = True
        self._buffer = io.BytesIO()
        if self._upload_id is None:
            return
        try:
            with translated("abort upload of", self._key):
                self._storage.client().abort_multipart_upload(
                    Bucket=self._storage.bucket, Key=self._key, UploadId=self._upload_id
                )
        except StorageError as exc:
            # Kept, so a later abort() tries again. The bucket's lifecycle rule for
            # incomplete multipart uploads is what finally removes parts left here.
            logger.warning(
                "could not abort multipart upload %s of %r: %s", self._upload_id, self._key, exc
            )
            return
        self._upload_id = None

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the upload was completed, aborted or failed")

    def _guarded(self, step: Callable[[], None]) -> None:
        # After a failed step the buffer and part list no longer match what was sent:
        # only abort() is left.
        try:
            with translated("write", self._key):
                step()
        except BaseException:
            self._closed = True
            raise

    def _upload_buffered_part(self) -> None:
        self._upload_part(self._buffer)
        self._buffer = io.BytesIO()

    def _upload_part(self, data: Chunk | io.BytesIO) -> None:
        client, bucket = self._storage.client(), self._storage.bucket
        if self._upload_id is None:
            response = client.create_multipart_upload(
                Bucket=bucket, Key=self._key, ContentType=self._content_type
            )
            self._upload_id = response["UploadId"]
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise StorageError(
                f"S3 write {self._key!r} failed: more than {MAX_PARTS} parts of "
                f"{self._storage.part_size} bytes; raise S3_PART_SIZE_MIB"
            )
        if isinstance(data, io.BytesIO):
            length, md5 = data.tell(), _md5_of_buffer(data)
            data.seek(0)
        else:
            length, md5 = len(data), content_md5(data)
            if isinstance(data, memoryview):
                # botocore sends bytes, bytearrays and files; a view becomes a file.
                data = io.BytesIO(data)
        response_part = client.upload_part(
            Bucket=bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            # botocore sends a bytearray as it sends bytes; the stubs only name bytes.
            Body=cast(bytes, data),
            ContentLength=length,
            ContentMD5=md5,
        )
        self._parts.append({"ETag": response_part["ETag"], "PartNumber": number})

    def _finish(self) -> None:
        client, bucket = self._storage.client(), self._storage.bucket
        if self._upload_id is None:
            length = self._buffer.tell()
            self._buffer.seek(0)
            client.put_object(
                Bucket=bucket,
                Key=self._key,
                Body=self._buffer,
                ContentLength=length,
                ContentType=self._content_type,
                ContentMD5=_md5_of_buffer(self._buffer),
            )
            return
        if self._buffer.tell():
            self._upload_buffered_part()
        client.complete_multipart_upload(
            Bucket=bucket,
            Key=self._key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )


def content_md5(data: Chunk) -> str:
    # Content-MD5 lets the service refuse a body damaged on the way; not for security.
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def _md5_of_buffer(buffer: io.BytesIO) -> str:
    # getbuffer() reads the bytes in place; released before boto3 reads the stream.
    with buffer.getbuffer() as view:
        return content_md5(view)
