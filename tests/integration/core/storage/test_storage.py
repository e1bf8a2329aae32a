"""Object storage through its one interface, both adapters alike: S3 against moto's real
HTTP server, local disk in a temp folder."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.settings import Settings
from core.storage import (
    ObjectInfo,
    Storage,
    StorageError,
    content_disposition,
    open_storage,
)
from core.storage.local import TEMP_PREFIX, LocalStorage
from core.storage.s3 import S3Storage
from core.uploads.keys import derived_key, upload_key, upload_prefix
from tests.support.s3 import MotoS3Server, record_requests

MIB = 1024 * 1024


TENANT = uuid.UUID("00000000-0000-4000-8000-000000000001")


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoS3Server]:
    with MotoS3Server() as server:
        yield server


@pytest.fixture(params=["s3", "local"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "s3":
        server: MotoS3Server = request.getfixturevalue("moto")
        store = open_storage(server.settings(tmp_path))
        assert isinstance(store, S3Storage)
        store.ensure_bucket()
        yield store
        store.delete_prefix("tenants/")
    else:
        store = open_storage(local_settings(tmp_path))
        assert isinstance(store, LocalStorage)
        store.ensure_bucket()
        yield store


def local_settings(data_dir: Path, **values: Any) -> Settings:
    return Settings(
        _env_file=None,
        **{"environment": "test", "data_dir": data_dir, "do_spaces_bucket": None, **values},
    )


def new_key(name: str | None = None) -> str:
    upload = uuid.uuid4()
    return upload_key(TENANT, upload) if name is None else derived_key(TENANT, upload, name)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def temp_files(storage: Storage) -> list[Path]:
    assert isinstance(storage, LocalStorage)
    return [
        Path(folder, name)
        for folder, _, names in os.walk(storage.root)
        for name in names
        if name.startswith(TEMP_PREFIX)
    ]


def test_sink_round_trip_of_a_multipart_object(storage: Storage, tmp_path: Path) -> None:
    data = os.urandom(12 * MIB + 12345)
    key = new_key()
    parts = record_requests(storage, "UploadPart")
    sink = storage.open_sink(key, "application/octet-stream")
    # Odd sizes across part boundaries, and one chunk larger than a whole part.
    offset = 0
    for size in (1, 700_001, 6 * MIB, 333_333):
        sink.write(data[offset : offset + size])
        offset += size
    while offset < len(data):
        sink.write(data[offset : offset + 1_000_003])
        offset += 1_000_003
    info = sink.complete()
    assert info == ObjectInfo(key, len(data), "application/octet-stream")
    assert sink.complete() == info

    target = tmp_path / "downloaded.bin"
    downloaded = storage.download(key, target)
    assert downloaded.size == len(data)
    assert downloaded.content_type == "application/octet-stream"
    assert sha256(target.read_bytes()) == sha256(data)
    assert storage.head(key) == info

    if isinstance(storage, S3Storage):
        # Full parts as they filled, numbered from 1, and the rest as the last one.
        assert [(part.part_number, len(part.body)) for part in parts] == [
            ("1", 5 * MIB),
            ("2", 5 * MIB),
            ("3", len(data) - 10 * MIB),
        ]
        # S3's ETag of a multipart object counts its parts.
        etag = storage.client().head_object(Bucket=storage.bucket, Key=key)["ETag"]
        assert etag.strip('"').endswith("-3")
    else:
        assert temp_files(storage) == []


@pytest.mark.parametrize("data", [b"", b"tiny"], ids=["empty", "tiny"])
def test_sink_round_trip_of_a_small_object(storage: Storage, tmp_path: Path, data: bytes) -> None:
    key = new_key()
    sink = storage.open_sink(key, "text/plain")
    if data:
        sink.write(data)
    assert sink.complete() == ObjectInfo(key, len(data), "text/plain")
    assert storage.head(key) == ObjectInfo(key, len(data), "text/plain")
    storage.download(key, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data
    assert b"".join(storage.iter_chunks(key)) == data


def test_abort_leaves_nothing(storage: Storage) -> None:
    key = new_key()
    sink = storage.open_sink(key, "application/octet-stream")
    # More than one part, so S3 has a multipart upload with a part in it.
    sink.write(os.urandom(6 * MIB))
    sink.abort()
    sink.abort()
    with pytest.raises(RuntimeError):
        sink.write(b"more")
    assert storage.head(key) is None
    if isinstance(storage, S3Storage):
        uploads = storage.client().list_multipart_uploads(Bucket=storage.bucket)
        assert uploads.get("Uploads", []) == []
    else:
        assert temp_files(storage) == []


def test_abort_after_complete_keeps_the_object(storage: Storage) -> None:
    key = new_key()
    sink = storage.open_sink(key, "text/plain")
    sink.write(b"kept")
    sink.complete()
    sink.abort()
    assert storage.head(key) == ObjectInfo(key, 4, "text/plain")


def test_put_head_download_stream_and_delete_prefix(storage: Storage, tmp_path: Path) -> None:
    upload, other = uuid.uuid4(), uuid.uuid4()
    original = upload_key(TENANT, upload)
    text = derived_key(TENANT, upload, "text.txt")
    big = derived_key(TENANT, upload, "big.bin")
    elsewhere = upload_key(TENANT, other)

    assert storage.put_bytes(original, b"hello world", "text/plain") == ObjectInfo(
        original, 11, "text/plain"
    )
    storage.put_bytes(text, "héllo".encode(), "text/plain; charset=utf-8")
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(6 * MIB))
    assert storage.put_file(big, source, "application/pdf") == ObjectInfo(
        big, 6 * MIB, "application/pdf"
    )
    storage.put_bytes(elsewhere, b"other", "text/plain")

    assert storage.head(text) == ObjectInfo(text, 6, "text/plain; charset=utf-8")
    assert storage.download(big, tmp_path / "big.out") == ObjectInfo(
        big, 6 * MIB, "application/pdf"
    )
    assert sha256((tmp_path / "big.out").read_bytes()) == sha256(source.read_bytes())

    chunks = list(storage.iter_chunks(original, chunk_size=4))
    assert chunks == [b"hell", b"o wo", b"rld"]
    # Stopping early closes the stream.
    stream = storage.iter_chunks(big, chunk_size=MIB)
    assert len(next(stream)) == MIB
    stream.close()

    # Overwriting replaces the object and its type.
    storage.put_bytes(original, b"replaced", "application/json")
    assert storage.head(original) == ObjectInfo(original, 8, "application/json")

    assert storage.delete_prefix(upload_prefix(TENANT, upload)) == 3
    for key in (original, text, big):
        assert storage.head(key) is None
    assert storage.head(elsewhere) == ObjectInfo(elsewhere, 5, "text/plain")
    assert storage.delete_prefix(upload_prefix(TENANT, upload)) == 0


def test_missing_objects(storage: Storage, tmp_path: Path) -> None:
    key = new_key()
    assert storage.head(key) is None
    with pytest.raises(StorageError) as raised:
        storage.download(key, tmp_path / "never")
    assert raised.value.not_found
    assert not raised.value.transient
    assert not (tmp_path / "never").exists()
    with pytest.raises(StorageError) as raised:
        storage.iter_chunks(key)
    assert raised.value.not_found
    assert not raised.value.transient


def test_delete_many_objects(storage: Storage) -> None:
    upload = uuid.uuid4()
    for number in range(25):
        storage.put_bytes(derived_key(TENANT, upload, f"page-{number}.txt"), b"x", "text/plain")
    assert storage.delete_prefix(upload_prefix(TENANT, upload)) == 25


def test_failed_put_file_keeps_the_old_object(storage: Storage, tmp_path: Path) -> None:
    key = new_key()
    storage.put_bytes(key, b"old", "text/plain")
    with pytest.raises(StorageError) as raised:
        storage.put_file(key, tmp_path / "no-such-file", "application/pdf")
    assert not raised.value.not_found
    assert storage.head(key) == ObjectInfo(key, 3, "text/plain")
    assert b"".join(storage.iter_chunks(key)) == b"old"


def test_presigned_put_uploads_directly(storage: Storage) -> None:
    key = new_key()
    data = os.urandom(300_000)
    request = storage.presign_put(key, len(data), "image/png", 60)
    if isinstance(storage, LocalStorage):
        assert request is None
        return
    assert request is not None
    assert request.headers == {"Content-Type": "image/png", "Content-Length": str(len(data))}
    response = httpx.put(request.url, content=data, headers=request.headers, timeout=10)
    assert response.status_code == 200, response.text
    assert storage.head(key) == ObjectInfo(key, len(data), "image/png")
    # Type and length are signed: a client cannot send something else on this URL.
    signed = httpx.URL(request.url).params["X-Amz-SignedHeaders"].split(";")
    assert {"content-length", "content-type", "host"} <= set(signed)


def test_presigned_get_downloads_with_a_file_name(storage: Storage) -> None:
    key = new_key()
    storage.put_bytes(key, b"%PDF-1.7 body", "application/octet-stream")
    url = storage.presign_get(key, 60, "Résumé 2024.pdf", "application/pdf")
    if isinstance(storage, LocalStorage):
        assert url is None
        return
    assert url is not None
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.content == b"%PDF-1.7 body"
    assert response.headers["content-disposition"] == content_disposition("Résumé 2024.pdf")
    assert response.headers["content-type"] == "application/pdf"


@pytest.mark.parametrize("seconds", [0, 7 * 24 * 3600 + 1])
def test_presign_lifetime_is_bounded(storage: Storage, seconds: int) -> None:
    with pytest.raises(ValueError, match="expires_seconds"):
        storage.presign_get(new_key(), seconds, None, None)


def test_ensuring_the_bucket_again_keeps_what_it_holds(storage: Storage) -> None:
    """Every process ensures the bucket when it starts: doing it again must neither
    fail nor empty it, and the readiness ping answers after it."""
    key, data = new_key(), b"stored before a restart"
    storage.put_bytes(key, data, "text/plain")

    storage.ensure_bucket()
    storage.ping()

    assert storage.head(key) == ObjectInfo(key, len(data), "text/plain")
    assert b"".join(storage.iter_chunks(key)) == data
