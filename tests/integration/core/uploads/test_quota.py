"""Each tenant's storage quota, as a client meets it: uploads that do not fit are
refused with 429 and leave nothing behind, deleting makes room, and processing that
would store derived files past the quota fails the job instead."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
from fastapi.testclient import TestClient
from sqlalchemy import update

from core.models import Tenant
from core.uploads.keys import upload_prefix
from tests.support import jobs, samples
from tests.support.factories import User
from tests.support.problems import assert_problem
from tests.support.s3 import FAKE_KEY, FAKE_SECRET, REGION
from tests.support.stack import Stack
from tests.support.worker import WorkerProcess


def _set_quota(stack: Stack, tenant_id: uuid.UUID, quota: int) -> None:
    with stack.db.transaction() as session:
        session.execute(
            update(Tenant).where(Tenant.id == tenant_id).values(storage_quota_bytes=quota)
        )


def _upload(client: TestClient, user: User, data: bytes, name: str = "notes.txt") -> Any:
    return client.post(
        "/api/v1/uploads", headers=user.headers, files={"file": (name, data, "text/plain")}
    )


def _objects(stack: Stack, user: User) -> list[str]:
    """The keys in the bucket under the user's tenant, as S3 itself lists them."""
    s3 = boto3.client(
        "s3",
        endpoint_url=stack.s3.endpoint_url,
        region_name=REGION,
        aws_access_key_id=FAKE_KEY,
        aws_secret_access_key=FAKE_SECRET,
    )
    listed = s3.list_objects_v2(
        Bucket=stack.settings.do_spaces_bucket or "",
        Prefix=f"tenants/{user.personal_tenant_id}/",
    )
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_an_upload_past_the_quota_is_refused_and_stores_nothing(
    app_client: TestClient, stack: Stack, user: User
) -> None:
    _set_quota(stack, user.personal_tenant_id, 1000)
    first = _upload(app_client, user, b"a" * 600)
    assert first.status_code == 201, first.text
    kept = _objects(stack, user)

    second = _upload(app_client, user, b"b" * 600)

    body = assert_problem(second, 429, "storage_quota_exceeded")
    assert body["quota_bytes"] == 1000
    assert body["used_bytes"] == 600
    assert body["requested_bytes"] == 600
    listed = app_client.get("/api/v1/uploads", headers=user.headers).json()["items"]
    assert [u["id"] for u in listed] == [first.json()["upload"]["id"]]
    assert _objects(stack, user) == kept


def test_deleting_an_upload_makes_room(app_client: TestClient, stack: Stack, user: User) -> None:
    _set_quota(stack, user.personal_tenant_id, 1000)
    first = _upload(app_client, user, b"a" * 600).json()
    assert _upload(app_client, user, b"b" * 600).status_code == 429

    deleted = app_client.delete(f"/api/v1/uploads/{first['upload']['id']}", headers=user.headers)
    assert deleted.status_code == 204

    assert _upload(app_client, user, b"b" * 600).status_code == 201


def test_a_direct_upload_counts_from_its_presign(
    app_client: TestClient, stack: Stack, user: User
) -> None:
    _set_quota(stack, user.personal_tenant_id, 1000)

    def presign(size: int) -> Any:
        return app_client.post(
            "/api/v1/uploads/presign",
            headers=user.headers,
            json={"filename": "big.bin", "content_type": "text/plain", "size": size},
        )

    assert presign(600).status_code == 201
    assert_problem(presign(600), 429, "storage_quota_exceeded")
    assert presign(400).status_code == 201


def test_processing_past_the_quota_fails_and_stores_no_derived_file(
    app_client: TestClient, stack: Stack, user: User, worker: WorkerProcess
) -> None:
    document = samples.pdf(["A page of words. " * 100, "Another page. " * 100])
    # Room for the PDF, not for the text it holds.
    _set_quota(stack, user.personal_tenant_id, len(document) + 100)
    created = app_client.post(
        "/api/v1/uploads",
        headers=user.headers,
        files={"file": ("report.pdf", document, "application/pdf")},
    )
    assert created.status_code == 201, created.text
    upload = created.json()["upload"]

    job = jobs.wait_for(app_client, user.headers, created.json()["job"]["id"])

    assert job["status"] == "failed"
    assert job["error"]["type"] == "storage_quota_exceeded"
    prefix = upload_prefix(user.personal_tenant_id, uuid.UUID(upload["id"]))
    assert [key for key in _objects(stack, user) if key.startswith(prefix)] == [prefix + "original"]
