"""The S3 adapter's own part, against moto's real HTTP server: bulk deletes as S3 wants
them, a missing bucket or endpoint, and a client built only when first used."""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.settings import ConfigurationError
from core.storage import (
    StorageError,
    open_storage,
)
from core.storage.s3 import S3Storage
from core.uploads.keys import derived_key, upload_key, upload_prefix
from tests.support.s3 import (
    FAKE_SECRET,
    MotoS3Server,
    new_bucket_name,
    record_requests,
    s3_settings,
)
from tests.support.smtp import free_port

TENANT = uuid.UUID("00000000-0000-4000-8000-000000000001")


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoS3Server]:
    with MotoS3Server() as server:
        yield server


def new_key(name: str | None = None) -> str:
    upload = uuid.uuid4()
    return upload_key(TENANT, upload) if name is None else derived_key(TENANT, upload, name)


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


def test_half_the_credentials_refuses(moto: MotoS3Server, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="DO_SPACES_SECRET"):
        open_storage(moto.settings(tmp_path, do_spaces_secret=None))
