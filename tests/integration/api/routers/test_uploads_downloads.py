"""Downloads served by the API itself, as on the embedded default (storage on local
disk): the bytes, each header once, and a clear 404 when the file has gone."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.uploads.keys import upload_key
from tests.support.factories import User
from tests.support.problems import assert_problem
from tests.support.stack import Stack


@pytest.fixture
def local_client(stack: Stack, tmp_path: Path) -> Iterator[TestClient]:
    from api.app import create_app

    settings = stack.settings.model_copy(
        update={"do_spaces_bucket": None, "s3_endpoint_url": None, "data_dir": tmp_path}
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def test_a_download_carries_each_header_once(local_client: TestClient, user: User) -> None:
    created = local_client.post(
        "/api/v1/uploads", headers=user.headers, files={"file": ("a.txt", b"hello", "text/plain")}
    )
    assert created.status_code == 201, created.text

    content = local_client.get(
        f"/api/v1/uploads/{created.json()['upload']['id']}/content", headers=user.headers
    )

    assert content.status_code == 200
    assert content.content == b"hello"
    assert content.headers.get_list("x-content-type-options") == ["nosniff"]


def test_an_original_gone_from_storage_is_upload_not_found(
    local_client: TestClient, user: User, tmp_path: Path
) -> None:
    created = local_client.post(
        "/api/v1/uploads", headers=user.headers, files={"file": ("a.txt", b"hello", "text/plain")}
    )
    upload = created.json()["upload"]
    key = upload_key(user.personal_tenant_id, uuid.UUID(upload["id"]))
    stored = tmp_path / "storage" / key
    assert stored.is_file()
    stored.unlink()

    content = local_client.get(f"/api/v1/uploads/{upload['id']}/content", headers=user.headers)

    assert_problem(content, 404, "upload_not_found")
