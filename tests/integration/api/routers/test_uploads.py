"""Uploads end to end, through the real worker: on S3 (a real HTTP endpoint, moto) and
on local disk with the filesystem broker (the embedded default)."""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import SecretStr

from core.identity.access import Scope
from core.settings import Settings
from core.storage import open_storage
from core.uploads.keys import derived_key, upload_key
from tests.support import jobs, samples
from tests.support.factories import User, create_api_key, create_user
from tests.support.problems import assert_problem
from tests.support.stack import Stack
from tests.support.worker import WorkerProcess

API = "/api/v1"


@dataclass
class Variant:
    name: str
    client: TestClient
    settings: Settings
    stack: Stack

    def user(self) -> User:
        return create_user(self.stack)


@pytest.fixture(scope="module")
def local_variant(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Variant]:
    """The embedded default's adapters: local disk and the filesystem broker, with a
    worker of its own (and no second reconciler on the shared database)."""
    from api.app import create_app

    data_dir = tmp_path_factory.mktemp("local-uploads")
    env = {k: v for k, v in stack.env.items() if not k.startswith(("S3_", "DO_SPACES_"))}
    env.update({"BROKER_URL": "filesystem://", "DATA_DIR": str(data_dir)})
    settings = stack.settings.model_copy(
        update={
            "broker_url": SecretStr("filesystem://"),
            "data_dir": data_dir,
            "do_spaces_bucket": None,
            "s3_endpoint_url": None,
        }
    )
    proc = WorkerProcess(env, tmp_path_factory.mktemp("local-worker"), beat=False)
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            yield Variant("local", client, settings, stack)
    finally:
        proc.stop()


@pytest.fixture(params=["s3", "local"])
def variant(
    request: pytest.FixtureRequest, stack: Stack, app_client: TestClient, worker: WorkerProcess
) -> Variant:
    if request.param == "s3":
        return Variant("s3", app_client, stack.settings, stack)
    local: Variant = request.getfixturevalue("local_variant")
    return local


def upload(client: TestClient, user: User, data: bytes, filename: str, content_type: str) -> Any:
    return client.post(
        f"{API}/uploads",
        headers=user.headers,
        files={"file": (filename, io.BytesIO(data), content_type)},
    )


def processed(client: TestClient, user: User, data: bytes, filename: str, ctype: str) -> Any:
    response = upload(client, user, data, filename, ctype)
    assert response.status_code == 201, response.text
    created = response.json()
    job = jobs.wait_for(client, user.headers, created["job"]["id"], timeout=60)
    detail = client.get(f"{API}/uploads/{created['upload']['id']}", headers=user.headers).json()
    return created, job, detail


def fetch(client: TestClient, user: User, path: str) -> bytes:
    """Follow a redirect to storage (S3) or read the streamed bytes (local)."""
    response = client.get(path, headers=user.headers, follow_redirects=False)
    if response.status_code == 307:
        direct = httpx.get(response.headers["location"], timeout=10)
        assert direct.status_code == 200
        return direct.content
    assert response.status_code == 200, response.text
    return response.content


def test_text_upload_round_trip(variant: Variant) -> None:
    user = variant.user()
    data = samples.markdown()

    created, job, detail = processed(variant.client, user, data, "notes.md", "text/markdown")

    assert created["upload"]["size"] == len(data)
    assert created["upload"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert job["status"] == "succeeded", job
    assert job["result"]["kind"] == "markdown"
    assert detail["job"]["id"] == job["id"]
    content = fetch(variant.client, user, f"{API}/uploads/{detail['id']}/content")
    assert content == data


def test_pdf_gives_pages_text_and_progress(variant: Variant) -> None:
    user = variant.user()
    data = samples.pdf(["Alpha page words", "Beta page words", "Gamma page words"])

    _, job, detail = processed(variant.client, user, data, "report.pdf", "application/pdf")

    assert job["status"] == "succeeded", job
    assert job["result"]["kind"] == "pdf"
    assert job["result"]["summary"]["pages"] == 3
    names = {d["name"] for d in detail["derived"]}
    assert "text.txt" in names
    text = fetch(variant.client, user, f"{API}/uploads/{detail['id']}/derived/text.txt")
    assert b"Beta page words" in text
    events = variant.client.get(f"{API}/jobs/{job['id']}/events", headers=user.headers).json()
    assert sum(1 for e in events["items"] if e["type"] == "progress") >= 3


def test_image_gets_a_small_thumbnail_without_metadata(variant: Variant) -> None:
    user = variant.user()

    _, job, detail = processed(variant.client, user, samples.png(), "photo.png", "image/png")

    assert job["status"] == "succeeded", job
    assert job["result"]["summary"]["width"] == 640
    thumbnail = fetch(variant.client, user, f"{API}/uploads/{detail['id']}/derived/thumbnail.png")
    image = Image.open(io.BytesIO(thumbnail))
    assert max(image.size) <= 256
    assert not image.getexif()


@pytest.mark.parametrize(
    ("make", "filename", "kind"),
    [(samples.csv_text, "items.csv", "csv"), (samples.json_doc, "doc.json", "json")],
)
def test_csv_and_json(variant: Variant, make: Any, filename: str, kind: str) -> None:
    user = variant.user()

    _, job, _ = processed(variant.client, user, make(), filename, "text/plain")

    assert job["status"] == "succeeded", job
    assert job["result"]["kind"] == kind


def test_the_content_type_is_sniffed_not_trusted(variant: Variant) -> None:
    user = variant.user()

    created, job, _ = processed(variant.client, user, samples.png(), "cat.txt", "text/plain")

    assert created["upload"]["content_type"] == "image/png"
    assert created["upload"]["declared_content_type"] == "text/plain"
    assert job["result"]["kind"] == "image"


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\\\windows\\\\evil.exe", "evil.exe"),
        ("résumé 東京.txt", "résumé 東京.txt"),
        ("a" * 400 + ".txt", "a" * 251 + ".txt"),
    ],
)
def test_filenames_are_display_only(variant: Variant, given: str, shown: str) -> None:
    user = variant.user()

    response = upload(variant.client, user, b"hello world\n", given, "text/plain")

    assert response.status_code == 201, response.text
    body = response.json()["upload"]
    assert body["filename"] == shown
    content = variant.client.get(
        f"{API}/uploads/{body['id']}/content", headers=user.headers, follow_redirects=False
    )
    assert content.status_code in (200, 307)


def test_a_truncated_pdf_fails_without_retries(variant: Variant) -> None:
    user = variant.user()
    data = samples.pdf(["one", "two"])

    _, job, _ = processed(
        variant.client, user, data[: len(data) // 2], "cut.pdf", "application/pdf"
    )

    assert job["status"] == "failed", job
    assert job["attempts"] == 1
    assert job["error"]["retryable"] is False


def test_an_empty_file_is_422_and_leaves_nothing(variant: Variant) -> None:
    user = variant.user()

    response = upload(variant.client, user, b"", "empty.txt", "text/plain")

    assert_problem(response, 422, "empty_file")
    listed = variant.client.get(f"{API}/uploads", headers=user.headers).json()
    assert listed["items"] == []


def test_delete_removes_the_upload_and_its_files(variant: Variant) -> None:
    user = variant.user()
    _, _, detail = processed(variant.client, user, samples.png(), "p.png", "image/png")

    deleted = variant.client.delete(f"{API}/uploads/{detail['id']}", headers=user.headers)

    assert deleted.status_code == 204
    gone = variant.client.get(f"{API}/uploads/{detail['id']}", headers=user.headers)
    assert_problem(gone, 404, "upload_not_found")


def test_another_tenant_gets_404(variant: Variant) -> None:
    owner, stranger = variant.user(), variant.user()
    created = upload(variant.client, owner, b"private\n", "secret.txt", "text/plain").json()
    upload_id = created["upload"]["id"]

    for method, path in (
        ("GET", f"{API}/uploads/{upload_id}"),
        ("GET", f"{API}/uploads/{upload_id}/content"),
        ("GET", f"{API}/uploads/{upload_id}/derived/text.txt"),
        ("DELETE", f"{API}/uploads/{upload_id}"),
        ("POST", f"{API}/uploads/{upload_id}/complete"),
    ):
        response = variant.client.request(method, path, headers=stranger.headers)
        assert_problem(response, 404, "upload_not_found")
    assert variant.client.get(f"{API}/uploads", headers=stranger.headers).json()["items"] == []
    mine = variant.client.get(f"{API}/uploads/{upload_id}", headers=owner.headers)
    assert mine.status_code == 200


def test_over_the_limit_is_413_and_leaves_nothing(stack: Stack, tmp_path: Path) -> None:
    from api.app import create_app

    settings = stack.settings.model_copy(update={"max_upload_bytes": 6 * 1024 * 1024})
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        user = create_user(stack)
        data = os.urandom(7 * 1024 * 1024)
        response = upload(client, user, data, "big.bin", "application/octet-stream")
        assert_problem(response, 413, "payload_too_large")
        assert client.get(f"{API}/uploads", headers=user.headers).json()["items"] == []


def test_a_direct_upload_with_the_wrong_size_is_refused(variant: Variant) -> None:
    user = variant.user()
    data = b"direct upload body\n"
    presigned = variant.client.post(
        f"{API}/uploads/presign",
        headers=user.headers,
        json={"filename": "d.txt", "size": len(data) + 5, "content_type": "text/plain"},
    )
    assert presigned.status_code == 201, presigned.text
    body = presigned.json()
    # A client that sends other bytes than it announced (a store that checks the signed
    # length would refuse the PUT itself; completion must catch it either way).
    headers = {k: v for k, v in body["headers"].items() if k.lower() != "content-length"}
    _put(variant, body["url"], headers, data)

    completed = variant.client.post(
        f"{API}/uploads/{body['upload_id']}/complete", headers=user.headers
    )

    assert_problem(completed, 409, "upload_incomplete")


def test_a_direct_upload_is_processed(variant: Variant) -> None:
    user = variant.user()
    data = samples.csv_text()
    presigned = variant.client.post(
        f"{API}/uploads/presign",
        headers=user.headers,
        json={"filename": "direct.csv", "size": len(data), "content_type": "text/csv"},
    ).json()
    _put(variant, presigned["url"], presigned["headers"], data)

    completed = variant.client.post(
        f"{API}/uploads/{presigned['upload_id']}/complete", headers=user.headers
    )

    assert completed.status_code == 200, completed.text
    job = jobs.wait_for(variant.client, user.headers, completed.json()["job"]["id"], timeout=60)
    assert job["status"] == "succeeded", job
    assert job["result"]["kind"] == "csv"
    assert job["result"]["sha256"] == hashlib.sha256(data).hexdigest()


def _put(variant: Variant, url: str, headers: dict[str, str], data: bytes) -> None:
    if url.startswith("http://testserver"):
        status = variant.client.put(url, headers=headers, content=data).status_code
    else:
        status = httpx.put(url, headers=headers, content=data, timeout=10).status_code
    assert status in (200, 204)


def test_uploads_list_pages_with_a_cursor(variant: Variant) -> None:
    user = variant.user()
    ids = [
        upload(variant.client, user, f"file {n}\n".encode(), f"{n}.txt", "text/plain").json()[
            "upload"
        ]["id"]
        for n in range(3)
    ]

    first = variant.client.get(f"{API}/uploads?limit=2", headers=user.headers).json()
    second = variant.client.get(
        f"{API}/uploads?limit=2&cursor={first['next_cursor']}", headers=user.headers
    ).json()

    assert [u["id"] for u in first["items"] + second["items"]] == ids[::-1]
    assert second["next_cursor"] is None


def test_uploads_need_the_upload_scopes(app_client: TestClient, stack: Stack, user: User) -> None:
    headers = create_api_key(stack, user.personal_tenant_id, user, [Scope.JOBS_READ]).headers

    listed = app_client.get(f"{API}/uploads", headers=headers)
    created = app_client.post(
        f"{API}/uploads", headers=headers, files={"file": ("a.txt", b"a", "text/plain")}
    )

    assert_problem(listed, 403, "insufficient_scope")
    assert_problem(created, 403, "insufficient_scope")


def test_not_multipart_is_422(app_client: TestClient, user: User) -> None:
    response = app_client.post(f"{API}/uploads", headers=user.headers, content=b"raw bytes")
    assert_problem(response, 422, "validation_failed")
    no_file = app_client.post(
        f"{API}/uploads",
        headers=user.headers,
        data={"other": "x"},
        files={"notfile": ("a.txt", b"a", "text/plain")},
    )
    assert_problem(no_file, 422, "no_file")


def test_unknown_upload_is_404(app_client: TestClient, user: User) -> None:
    response = app_client.get(f"{API}/uploads/{uuid.uuid4()}", headers=user.headers)
    assert_problem(response, 404, "upload_not_found")


def test_deleting_an_upload_while_it_is_processed_leaves_nothing(variant: Variant) -> None:
    user = variant.user()
    pages = [f"Page {n} of a long report. " * 40 for n in range(60)]
    created = upload(variant.client, user, samples.pdf(pages), "long.pdf", "application/pdf")
    assert created.status_code == 201, created.text
    upload_id, job_id = created.json()["upload"]["id"], created.json()["job"]["id"]
    jobs.wait_for(variant.client, user.headers, job_id, statuses={"running", *jobs.TERMINAL})

    deleted = variant.client.delete(f"{API}/uploads/{upload_id}", headers=user.headers)

    assert deleted.status_code == 204
    job = jobs.wait_for(variant.client, user.headers, job_id, timeout=60)
    tenant = user.personal_tenant_id
    storage = open_storage(variant.settings)
    keys = [
        upload_key(tenant, uuid.UUID(upload_id)),
        derived_key(tenant, uuid.UUID(upload_id), "text.txt"),
    ]
    # Whatever the job managed before the delete, nothing of the upload is left.
    assert [storage.head(key) for key in keys] == [None, None]
    assert job["status"] in {"cancelled", "failed", "succeeded"}
    gone = variant.client.get(f"{API}/uploads/{upload_id}", headers=user.headers)
    assert_problem(gone, 404, "upload_not_found")


def test_a_file_of_several_parts_streams_through_intact(variant: Variant) -> None:
    user = variant.user()
    data = os.urandom(12 * 1024 * 1024 + 12345)  # three S3 parts of 5 MiB, the last short

    response = upload(variant.client, user, data, "blob.bin", "application/octet-stream")

    assert response.status_code == 201, response.text
    created = response.json()["upload"]
    assert created["size"] == len(data)
    assert created["sha256"] == hashlib.sha256(data).hexdigest()
    assert fetch(variant.client, user, f"{API}/uploads/{created['id']}/content") == data
    job = jobs.wait_for(variant.client, user.headers, response.json()["job"]["id"], timeout=60)
    assert job["status"] == "failed"
    assert job["error"]["type"] == "unsupported_file"


def test_bytes_put_again_after_completion_change_nothing(variant: Variant) -> None:
    user = variant.user()
    checked, swapped = b"checked text\n" * 10, b"\x89PNG\r\n\x1a\n" + b"x" * 122
    assert len(checked) == len(swapped)
    presigned = variant.client.post(
        f"{API}/uploads/presign",
        headers=user.headers,
        json={"filename": "a.txt", "size": len(checked), "content_type": "text/plain"},
    ).json()
    _put(variant, presigned["url"], presigned["headers"], checked)
    completed = variant.client.post(
        f"{API}/uploads/{presigned['upload_id']}/complete", headers=user.headers
    )
    assert completed.status_code == 200, completed.text

    # The same URL, replayed with other bytes of the same size.
    if presigned["url"].startswith("http://testserver"):
        replay = variant.client.put(
            presigned["url"], headers=presigned["headers"], content=swapped
        ).status_code
        assert replay == 404
    else:
        _put(variant, presigned["url"], presigned["headers"], swapped)

    content = fetch(variant.client, user, f"{API}/uploads/{presigned['upload_id']}/content")
    assert content == checked
    assert completed.json()["upload"]["content_type"] == "text/plain"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not multipart at all", "malformed"),
        (b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc', "cut"),
        (b"--b\r\nbad header line\r\n\r\nabc\r\n--b--\r\n", "header"),
    ],
)
def test_malformed_multipart_is_422_and_leaves_nothing(
    app_client: TestClient, user: User, body: bytes, reason: str
) -> None:
    response = app_client.post(
        f"{API}/uploads",
        headers={**user.headers, "Content-Type": "multipart/form-data; boundary=b"},
        content=body,
    )

    assert_problem(response, 422, "validation_failed")
    assert app_client.get(f"{API}/uploads", headers=user.headers).json()["items"] == [], reason


def test_control_characters_in_the_declared_type_are_dropped(
    app_client: TestClient, user: User
) -> None:
    body = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
        b"Content-Type: text/pl\x00ain\r\n\r\nplain text\n\r\n--b--\r\n"
    )
    response = app_client.post(
        f"{API}/uploads",
        headers={**user.headers, "Content-Type": "multipart/form-data; boundary=b"},
        content=body,
    )

    assert response.status_code == 201, response.text
    assert response.json()["upload"]["declared_content_type"] == "text/plain"
