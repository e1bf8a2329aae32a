"""Object storage, both adapters through the one interface: S3 against moto's real HTTP
server, local disk in a temp folder."""

from __future__ import annotations

import base64
import hashlib
import os
import pickle
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from core.settings import ConfigurationError, Settings
from core.storage import (
    ObjectInfo,
    Storage,
    StorageError,
    check_key,
    content_disposition,
    open_storage,
)
from core.storage.local import TEMP_PREFIX, LocalStorage
from core.storage.s3 import S3Storage
from core.uploads.keys import derived_key, upload_key, upload_prefix
from tests.support.s3 import FAKE_SECRET, MotoS3Server, new_bucket_name, s3_settings
from tests.support.smtp import free_port

MIB = 1024 * 1024
TENANT = uuid.UUID("00000000-0000-4000-8000-000000000001")
STORAGE_VARIABLES = (
    "DO_SPACES_BUCKET",
    "DO_SPACES_KEY",
    "DO_SPACES_SECRET",
    "S3_ENDPOINT_URL",
    "S3_REGION",
    "ENVIRONMENT",
    "SECRET_KEY",
)


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


@dataclass(frozen=True)
class Sent:
    part_number: str  # the partNumber query parameter, "" for other requests
    body: bytes
    headers: dict[str, str]


def record_requests(storage: Storage, operation: str) -> list[Sent]:
    """Every `operation` request the S3 adapter's client sends from now on, as it goes on
    the wire; stays empty for local disk."""
    sent: list[Sent] = []
    if not isinstance(storage, S3Storage):
        return sent

    def record(request: Any, **_: Any) -> None:
        body = request.body
        if hasattr(body, "read"):
            position = body.tell()
            data = body.read()
            body.seek(position)
        else:
            data = bytes(body or b"")
        number = httpx.URL(request.url).params.get("partNumber", "")
        headers = {
            name: value.decode() if isinstance(value, bytes) else value
            for name, value in request.headers.items()
        }
        sent.append(Sent(number, data, headers))

    storage.client().meta.events.register(f"before-send.s3.{operation}", record)
    return sent


def temp_files(storage: Storage) -> list[Path]:
    assert isinstance(storage, LocalStorage)
    return [
        Path(folder, name)
        for folder, _, names in os.walk(storage.root)
        for name in names
        if name.startswith(TEMP_PREFIX)
    ]


# --- streaming uploads -------------------------------------------------------------------


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


# --- whole objects -----------------------------------------------------------------------


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


def test_bulk_delete_sends_content_md5(moto: MotoS3Server, tmp_path: Path) -> None:
    # Several S3-compatible services refuse DeleteObjects without it.
    storage = open_storage(moto.settings(tmp_path))
    storage.ensure_bucket()
    upload = uuid.uuid4()
    storage.put_bytes(upload_key(TENANT, upload), b"x", "text/plain")
    sent = record_requests(storage, "DeleteObjects")
    assert storage.delete_prefix(upload_prefix(TENANT, upload)) == 1
    [request] = sent
    expected = base64.b64encode(hashlib.md5(request.body).digest()).decode()
    assert request.headers["Content-MD5"] == expected


def test_storage_error_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(StorageError("boom", transient=True, not_found=True)))
    assert (str(error), error.transient, error.not_found) == ("boom", True, True)


# --- presigned URLs ----------------------------------------------------------------------


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


# --- configuration and failures ----------------------------------------------------------


def test_ensuring_the_bucket_again_keeps_what_it_holds(storage: Storage) -> None:
    """Every process ensures the bucket when it starts: doing it again must neither
    fail nor empty it, and the readiness ping answers after it."""
    key, data = new_key(), b"stored before a restart"
    storage.put_bytes(key, data, "text/plain")

    storage.ensure_bucket()
    storage.ping()

    assert storage.head(key) == ObjectInfo(key, len(data), "text/plain")
    assert b"".join(storage.iter_chunks(key)) == data


def test_ping_of_a_missing_bucket_fails_permanently(moto: MotoS3Server, tmp_path: Path) -> None:
    store = open_storage(moto.settings(tmp_path))
    with pytest.raises(StorageError) as raised:
        store.ping()
    assert not raised.value.transient


def test_unreachable_endpoint_is_transient_and_quick(tmp_path: Path) -> None:
    nothing_there = f"http://127.0.0.1:{free_port()}"
    store = open_storage(
        s3_settings(
            nothing_there,
            new_bucket_name(),
            data_dir=tmp_path,
            s3_connect_timeout_seconds=1,
            s3_max_attempts=1,
        )
    )
    started = time.monotonic()
    with pytest.raises(StorageError) as raised:
        store.put_bytes(new_key(), b"data", "text/plain")
    assert raised.value.transient
    assert not raised.value.not_found
    assert time.monotonic() - started < 5
    assert FAKE_SECRET not in str(raised.value)


def test_the_client_is_built_on_first_use(moto: MotoS3Server, tmp_path: Path) -> None:
    store = open_storage(moto.settings(tmp_path))
    assert isinstance(store, S3Storage)
    assert store._client is None
    store.ensure_bucket()
    assert store._client is not None


def test_production_without_a_bucket_refuses(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in STORAGE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    settings = Settings(
        _env_file=None, environment="production", secret_key="k" * 48, data_dir=tmp_path
    )
    with pytest.raises(ConfigurationError, match="DO_SPACES_BUCKET"):
        open_storage(settings)


def test_dev_without_a_bucket_uses_local_disk(tmp_path: Path) -> None:
    store = open_storage(local_settings(tmp_path, do_spaces_bucket=""))
    assert isinstance(store, LocalStorage)
    assert store.root == tmp_path.resolve() / "storage"


def test_the_seed_variables_choose_s3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in STORAGE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DO_SPACES_BUCKET", "media")
    monkeypatch.setenv("DO_SPACES_KEY", "DO00EXAMPLE")
    monkeypatch.setenv("DO_SPACES_SECRET", "not-a-real-secret")
    monkeypatch.setenv("S3_ENDPOINT_URL", "https://nyc3.digitaloceanspaces.com")
    monkeypatch.setenv("S3_REGION", "nyc3")
    settings = Settings(
        _env_file=None, environment="production", secret_key="k" * 48, data_dir=tmp_path
    )
    store = open_storage(settings)
    assert isinstance(store, S3Storage)
    assert store.bucket == "media"
    assert "not-a-real-secret" not in repr(settings)


@pytest.mark.parametrize("mib", [4, 65])
def test_part_size_stays_within_what_s3_allows(mib: int, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="s3_part_size_mib"):
        local_settings(tmp_path, s3_part_size_mib=mib)


def test_half_the_credentials_refuses(moto: MotoS3Server, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="DO_SPACES_SECRET"):
        open_storage(moto.settings(tmp_path, do_spaces_secret=None))


def test_local_ping_fails_without_the_folder(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "absent")
    with pytest.raises(StorageError):
        store.ping()
    store.ensure_bucket()
    store.ping()


# --- keys (no servers) -------------------------------------------------------------------


def test_key_helpers() -> None:
    tenant = uuid.UUID("11111111-1111-4111-8111-111111111111")
    upload = uuid.UUID("22222222-2222-4222-8222-222222222222")
    prefix = f"tenants/{tenant}/uploads/{upload}/"
    assert upload_prefix(tenant, upload) == prefix
    assert upload_key(tenant, upload) == prefix + "original"
    assert derived_key(tenant, upload, "thumb-256.webp") == prefix + "derived/thumb-256.webp"
    for key in (upload_key(tenant, upload), derived_key(tenant, upload, "a")):
        check_key(key)


@pytest.mark.parametrize(
    "name", ["", "Thumb.png", ".hidden", "-dash", "a/b", "a" * 65, "..", "x y", "é"]
)
def test_derived_names_are_restricted(name: str) -> None:
    with pytest.raises(ValueError, match="derived name"):
        derived_key(TENANT, uuid.uuid4(), name)


def test_key_helpers_take_only_uuids() -> None:
    with pytest.raises(TypeError):
        upload_key(TENANT, "../../etc")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/etc/passwd",
        "../outside",
        "a/../../outside",
        "a/./b",
        "a//b",
        "a/b/",
        "a\\..\\b",
        "nul\x00byte",
        "line\nbreak",
        ".meta/a",
        "a/.tmp-x",
        "k" * 1025,
    ],
)
def test_keys_that_could_escape_are_refused(key: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="^key"):
        check_key(key)
    local = LocalStorage(tmp_path)
    with pytest.raises(ValueError, match="^key"):
        local.path_of(key)
    with pytest.raises(ValueError, match="^key"):
        local.put_bytes(key, b"x", "text/plain")
    assert list(tmp_path.iterdir()) == []


def test_a_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "tenants").symlink_to(outside)
    with pytest.raises(ValueError, match="leaves"):
        LocalStorage(root).path_of("tenants/x")


@pytest.mark.parametrize("prefix", ["", "tenants", "/", "../", "tenants//"])
def test_prefixes_are_checked(prefix: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="^prefix"):
        LocalStorage(tmp_path).delete_prefix(prefix)


def test_content_disposition() -> None:
    assert content_disposition("report.pdf") == 'attachment; filename="report.pdf"'
    assert content_disposition('a"b\\c/d\r\n.txt') == 'attachment; filename="a_b_c_d.txt"'
    assert content_disposition("") == 'attachment; filename="download"'
    assert content_disposition("Résumé.pdf") == (
        "attachment; filename=\"R_sum_.pdf\"; filename*=UTF-8''R%C3%A9sum%C3%A9.pdf"
    )
