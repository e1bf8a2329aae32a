"""Object storage on an S3-compatible service: DigitalOcean Spaces, AWS S3, MinIO.

The boto3 client is built on first use, under a lock, and shared: boto3 clients are
thread-safe, and a process that never touches storage never builds one. Every boto3 or
botocore error leaves as StorageError, classified transient or not.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import boto3
import botocore.session
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from core.storage import (
    ObjectInfo,
    PresignedRequest,
    StorageError,
    check_key,
    check_prefix,
    check_presign,
    content_disposition,
    os_storage_error,
)
from core.storage.s3_errors import (
    ERRORS,
    MISSING_BUCKET_CODES,
    TRANSIENT_CODES,
    error_code,
    translate,
    translated,
)
from core.storage.s3_sink import S3Sink, content_md5

if TYPE_CHECKING:
    from botocore.awsrequest import AWSRequest
    from botocore.response import StreamingBody
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.literals import BucketLocationConstraintType
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

    from core.settings import Settings

logger = logging.getLogger(__name__)

# list_objects_v2 and delete_objects both take at most this many keys.
BATCH = 1000
# Threads of one managed transfer (put_file, download) and connections of the client: the
# API calls storage from its thread pool, and each call holds a connection while it runs.
TRANSFER_THREADS = 4
MAX_CONNECTIONS = 32


class S3Storage:
    def __init__(self, settings: Settings) -> None:
        if settings.do_spaces_bucket is None:
            raise ValueError("S3Storage needs DO_SPACES_BUCKET")
        self.bucket = settings.do_spaces_bucket
        self.part_size = settings.s3_part_size_bytes
        self._settings = settings
        self._lock = threading.Lock()
        self._client: S3Client | None = None
        self._transfer = TransferConfig(
            multipart_threshold=self.part_size,
            multipart_chunksize=self.part_size,
            max_concurrency=TRANSFER_THREADS,
            # boto3's own transfer code, which goes through this client and its settings;
            # the CRT one (picked automatically where awscrt is installed) builds its own.
            preferred_transfer_client="classic",
        )

    def client(self) -> S3Client:
        """The shared boto3 client, built on the first call."""
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._build_client()
                client = self._client
        return client

    def _build_client(self) -> S3Client:
        settings = self._settings
        config = Config(
            region_name=settings.s3_region,
            signature_version="s3v4",
            connect_timeout=settings.s3_connect_timeout_seconds,
            read_timeout=settings.s3_read_timeout_seconds,
            retries={"total_max_attempts": settings.s3_max_attempts, "mode": "standard"},
            s3={"addressing_style": settings.s3_addressing_style.value},
            max_pool_connections=MAX_CONNECTIONS,
            # botocore >= 1.36 adds CRC checksums to every upload, which several
            # S3-compatible services refuse; uploads here send Content-MD5 instead.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        key, secret = settings.do_spaces_key, settings.do_spaces_secret
        # A session of its own: boto3's default session is not safe to create from
        # several threads at once.
        core_session = botocore.session.get_session()
        # botocore's table of every AWS endpoint (endpoints.json, about 7 MiB once
        # parsed, kept for the client's life) only feeds its legacy resolver. The S3
        # URL comes from the endpoint rule set and S3_ENDPOINT_URL, and the signature
        # is pinned to s3v4, so an empty table is found first and the process stays
        # that much smaller.
        core_session.get_component("data_loader").search_paths.insert(0, str(ENDPOINTS_OVERRIDE))
        session = boto3.session.Session(botocore_session=core_session)
        client = session.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=key.get_secret_value() if key is not None else None,
            aws_secret_access_key=secret.get_secret_value() if secret is not None else None,
            config=config,
        )
        client.meta.events.register("before-sign.s3.DeleteObjects", _add_content_md5)
        return client

    def open_sink(self, key: str, content_type: str) -> S3Sink:
        check_key(key)
        return S3Sink(self, key, content_type)

    def put_bytes(self, key: str, data: bytes, content_type: str) -> ObjectInfo:
        check_key(key)
        with translated("write", key):
            self.client().put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                ContentMD5=content_md5(data),
            )
        return ObjectInfo(key, len(data), content_type)

    def put_file(self, key: str, path: Path, content_type: str) -> ObjectInfo:
        check_key(key)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise os_storage_error("write", key, exc, not_found=False) from exc
        with translated("write", key):
            self.client().upload_file(
                Filename=str(path),
                Bucket=self.bucket,
                Key=key,
                ExtraArgs={"ContentType": content_type},
                Config=self._transfer,
            )
        return ObjectInfo(key, size, content_type)

    def move(self, source: str, target: str, content_type: str) -> ObjectInfo:
        check_key(source)
        check_key(target)
        client = self.client()
        with translated("move", source):
            head = client.head_object(Bucket=self.bucket, Key=source)
            # Pinned to the ETag just read: bytes replaced in between are not copied.
            client.copy_object(
                Bucket=self.bucket,
                Key=target,
                CopySource={"Bucket": self.bucket, "Key": source},
                CopySourceIfMatch=head["ETag"],
                ContentType=content_type,
                MetadataDirective="REPLACE",
            )
            client.delete_object(Bucket=self.bucket, Key=source)
        return ObjectInfo(target, head["ContentLength"], content_type)

    def download(self, key: str, path: Path) -> ObjectInfo:
        check_key(key)
        with translated("download", key):
            head = self.client().head_object(Bucket=self.bucket, Key=key)
            # s3transfer writes a temp file beside `path` and renames it into place.
            self.client().download_file(
                Bucket=self.bucket, Key=key, Filename=str(path), Config=self._transfer
            )
            size = path.stat().st_size
        return ObjectInfo(key, size, head.get("ContentType"))

    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> Generator[bytes, None, None]:
        check_key(key)
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        # Requested now, so a missing object raises before the caller starts a response.
        with translated("read", key):
            body = self.client().get_object(Bucket=self.bucket, Key=key)["Body"]
        return _stream(key, body, chunk_size)

    def head(self, key: str) -> ObjectInfo | None:
        check_key(key)
        try:
            with translated("head", key):
                response = self.client().head_object(Bucket=self.bucket, Key=key)
        except StorageError as exc:
            if exc.not_found:
                return None
            raise
        return ObjectInfo(key, response["ContentLength"], response.get("ContentType"))

    def delete_prefix(self, prefix: str) -> int:
        check_prefix(prefix)
        client = self.client()
        deleted = 0
        with translated("delete", prefix):
            pages = client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": BATCH}
            )
            for page in pages:
                objects: list[ObjectIdentifierTypeDef] = [
                    {"Key": item["Key"]} for item in page.get("Contents", [])
                ]
                if not objects:
                    continue
                response = client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
                )
                errors = response.get("Errors", [])
                if errors:
                    first = errors[0]
                    code = first.get("Code", "")
                    raise StorageError(
                        f"S3 delete {prefix!r} failed for {len(errors)} of {len(objects)} "
                        f"objects: {code} {first.get('Message', '')}".rstrip(),
                        transient=code in TRANSIENT_CODES,
                    )
                deleted += len(objects)
        return deleted

    def presign_put(
        self, key: str, size: int, content_type: str, expires_seconds: int
    ) -> PresignedRequest | None:
        check_key(key)
        check_presign(expires_seconds)
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        # Type and length become signed headers: the service refuses any other.
        with translated("presign", key):
            url = self.client().generate_presigned_url(
                "put_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": key,
                    "ContentType": content_type,
                    "ContentLength": size,
                },
                ExpiresIn=expires_seconds,
                HttpMethod="PUT",
            )
        return PresignedRequest(url, {"Content-Type": content_type, "Content-Length": str(size)})

    def presign_get(
        self, key: str, expires_seconds: int, filename: str | None, content_type: str | None
    ) -> str | None:
        check_key(key)
        check_presign(expires_seconds)
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if filename is not None:
            params["ResponseContentDisposition"] = content_disposition(filename)
        if content_type is not None:
            params["ResponseContentType"] = content_type
        with translated("presign", key):
            return self.client().generate_presigned_url(
                "get_object", Params=params, ExpiresIn=expires_seconds, HttpMethod="GET"
            )

    def ensure_bucket(self) -> None:
        client = self.client()
        try:
            client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if error_code(exc) not in MISSING_BUCKET_CODES:
                raise translate("check bucket", None, exc) from exc
        except ERRORS as exc:
            raise translate("check bucket", None, exc) from exc
        region = self._settings.s3_region
        try:
            if region == "us-east-1":
                # The one region S3 refuses to be named as a location constraint.
                client.create_bucket(Bucket=self.bucket)
            else:
                client.create_bucket(
                    Bucket=self.bucket,
                    CreateBucketConfiguration={
                        "LocationConstraint": cast("BucketLocationConstraintType", region)
                    },
                )
        except ClientError as exc:
            # Another process created it first.
            if error_code(exc) != "BucketAlreadyOwnedByYou":
                raise translate("create bucket", None, exc) from exc
        except ERRORS as exc:
            raise translate("create bucket", None, exc) from exc

    def ping(self) -> None:
        with translated("check bucket", None):
            self.client().head_bucket(Bucket=self.bucket)


def _stream(key: str, body: StreamingBody, chunk_size: int) -> Generator[bytes, None, None]:
    try:
        with translated("read", key):
            yield from body.iter_chunks(chunk_size)
    finally:
        body.close()


ENDPOINTS_OVERRIDE = Path(__file__).parent / "botocore_data"


def _add_content_md5(request: AWSRequest, **_: object) -> None:
    # botocore >= 1.36 sends DeleteObjects with a CRC32 checksum only; MinIO releases,
    # Ceph and other S3-compatible services still insist on Content-MD5 there. S3 takes
    # both. Set before signing, so the header is signed too.
    body = request.body
    if isinstance(body, bytes | bytearray) and "Content-MD5" not in request.headers:
        request.headers["Content-MD5"] = content_md5(bytes(body))
