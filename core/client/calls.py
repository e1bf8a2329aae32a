"""Every request the client makes, described once: method, path, body and how to read
the answer. `Client` sends them with httpx's sync client, `AsyncClient` with its async
one, so the two cannot drift apart."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from core.client import models
from core.client.errors import UNEXPECTED_RESPONSE, APIError

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

API = "/api/v1"
# A file part for a multipart body: (name, file object, content type).
FilePart = tuple[str, Any, str | None]


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    data: Mapping[str, str] | None = None
    files: Mapping[str, FilePart] | None = None
    headers: Mapping[str, str] | None = None
    # The answer may redirect to storage: followed without this client's headers.
    download: bool = False


def read(call: Call[T], response: httpx.Response) -> T:
    """The answer as the call's type; one that does not fit is an APIError too."""
    try:
        return call.parse(response)
    except (ValidationError, ValueError, KeyError) as exc:
        raise APIError(
            response.status_code, UNEXPECTED_RESPONSE, f"an answer this client cannot read: {exc}"
        ) from exc


def _one(model: type[M]) -> Callable[[httpx.Response], M]:
    return lambda response: model.model_validate_json(response.content)


def _many(model: type[M]) -> Callable[[httpx.Response], list[M]]:
    def parse(response: httpx.Response) -> list[M]:
        return [model.model_validate(item) for item in response.json()]

    return parse


def _nothing(_: httpx.Response) -> None:
    return None


def _bytes(response: httpx.Response) -> bytes:
    return response.content


def _query(**params: Any) -> dict[str, Any]:
    return {name: value for name, value in params.items() if value is not None}


def _idempotent(key: str | None) -> dict[str, str] | None:
    return {"Idempotency-Key": key} if key else None


def _schedule(delay_seconds: float | None, run_after: datetime | None) -> dict[str, Any]:
    when: dict[str, Any] = {}
    if delay_seconds is not None:
        when["delay_seconds"] = delay_seconds
    if run_after is not None:
        when["run_after"] = run_after.isoformat()
    return when


# Jobs


def submit_job(
    kind: str,
    input: Mapping[str, Any],
    *,
    idempotency_key: str | None = None,
    delay_seconds: float | None = None,
    run_after: datetime | None = None,
) -> Call[models.Job]:
    body = {"kind": kind, "input": dict(input), **_schedule(delay_seconds, run_after)}
    return Call(
        "POST", f"{API}/jobs", _one(models.Job), json=body, headers=_idempotent(idempotency_key)
    )


_BATCH_ITEMS = TypeAdapter(list[models.BatchItem])


def _batch_items(response: httpx.Response) -> list[models.BatchItem]:
    return _BATCH_ITEMS.validate_python(response.json()["items"])


def submit_batch(jobs: Sequence[Mapping[str, Any]]) -> Call[list[models.BatchItem]]:
    return Call("POST", f"{API}/jobs/batch", _batch_items, json={"jobs": [dict(j) for j in jobs]})


def get_job(job_id: uuid.UUID | str) -> Call[models.Job]:
    return Call("GET", f"{API}/jobs/{job_id}", _one(models.Job))


def list_jobs(
    *,
    status: str | None = None,
    kind: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Call[models.JobPage]:
    params = _query(status=status, kind=kind, limit=limit, cursor=cursor)
    return Call("GET", f"{API}/jobs", _one(models.JobPage), params=params)


def job_events(
    job_id: uuid.UUID | str, *, after: int = 0, limit: int | None = None
) -> Call[models.EventPage]:
    params = _query(after=after, limit=limit)
    return Call("GET", f"{API}/jobs/{job_id}/events", _one(models.EventPage), params=params)


def cancel_job(job_id: uuid.UUID | str) -> Call[models.Job]:
    return Call("POST", f"{API}/jobs/{job_id}/cancel", _one(models.Job))


def job_kinds() -> Call[list[models.JobKind]]:
    return Call("GET", f"{API}/job-kinds", _many(models.JobKind))


# Uploads


def create_upload(part: FilePart) -> Call[models.UploadCreated]:
    return Call("POST", f"{API}/uploads", _one(models.UploadCreated), files={"file": part})


def presign_upload(filename: str, size: int, content_type: str) -> Call[models.PresignedUpload]:
    body = {"filename": filename, "size": size, "content_type": content_type}
    return Call("POST", f"{API}/uploads/presign", _one(models.PresignedUpload), json=body)


def complete_upload(upload_id: uuid.UUID | str) -> Call[models.UploadCreated]:
    return Call("POST", f"{API}/uploads/{upload_id}/complete", _one(models.UploadCreated))


def get_upload(upload_id: uuid.UUID | str) -> Call[models.UploadDetail]:
    return Call("GET", f"{API}/uploads/{upload_id}", _one(models.UploadDetail))


def list_uploads(*, limit: int | None = None, cursor: str | None = None) -> Call[models.UploadPage]:
    params = _query(limit=limit, cursor=cursor)
    return Call("GET", f"{API}/uploads", _one(models.UploadPage), params=params)


def upload_content(upload_id: uuid.UUID | str) -> Call[bytes]:
    return Call("GET", f"{API}/uploads/{upload_id}/content", _bytes, download=True)


def derived_content(upload_id: uuid.UUID | str, name: str) -> Call[bytes]:
    return Call("GET", f"{API}/uploads/{upload_id}/derived/{name}", _bytes, download=True)


def delete_upload(upload_id: uuid.UUID | str) -> Call[None]:
    return Call("DELETE", f"{API}/uploads/{upload_id}", _nothing)


# Agents


def list_workflows() -> Call[list[models.Workflow]]:
    return Call("GET", f"{API}/agents", _many(models.Workflow))


def run_agent(
    workflow: str, input: Mapping[str, Any], *, idempotency_key: str | None = None
) -> Call[models.Job]:
    return Call(
        "POST",
        f"{API}/agents/{workflow}/runs",
        _one(models.Job),
        json={"input": dict(input)},
        headers=_idempotent(idempotency_key),
    )


# API keys


def create_api_key(name: str, scopes: Sequence[str]) -> Call[models.ApiKeyCreated]:
    body = {"name": name, "scopes": list(scopes)}
    return Call("POST", f"{API}/api-keys", _one(models.ApiKeyCreated), json=body)


def list_api_keys() -> Call[list[models.ApiKey]]:
    return Call("GET", f"{API}/api-keys", _many(models.ApiKey))


def revoke_api_key(key_id: uuid.UUID | str) -> Call[None]:
    return Call("DELETE", f"{API}/api-keys/{key_id}", _nothing)


# Webhooks


def create_webhook(
    url: str,
    events: Sequence[str],
    *,
    kinds: Sequence[str] | None = None,
    description: str = "",
) -> Call[models.WebhookCreated]:
    body = {
        "url": url,
        "events": list(events),
        "kinds": None if kinds is None else list(kinds),
        "description": description,
    }
    return Call("POST", f"{API}/webhooks", _one(models.WebhookCreated), json=body)


def list_webhooks() -> Call[list[models.Webhook]]:
    return Call("GET", f"{API}/webhooks", _many(models.Webhook))


def get_webhook(webhook_id: uuid.UUID | str) -> Call[models.Webhook]:
    return Call("GET", f"{API}/webhooks/{webhook_id}", _one(models.Webhook))


def update_webhook(webhook_id: uuid.UUID | str, **changes: Any) -> Call[models.Webhook]:
    """Only the fields given change: url, events, kinds (None: every kind), description,
    enabled."""
    return Call("PATCH", f"{API}/webhooks/{webhook_id}", _one(models.Webhook), json=changes)


def delete_webhook(webhook_id: uuid.UUID | str) -> Call[None]:
    return Call("DELETE", f"{API}/webhooks/{webhook_id}", _nothing)


def rotate_webhook_secret(webhook_id: uuid.UUID | str) -> Call[models.SecretRotated]:
    return Call("POST", f"{API}/webhooks/{webhook_id}/rotate-secret", _one(models.SecretRotated))


def send_test_event(webhook_id: uuid.UUID | str) -> Call[models.Job]:
    return Call("POST", f"{API}/webhooks/{webhook_id}/test", _one(models.Job))


def webhook_deliveries(
    webhook_id: uuid.UUID | str, *, limit: int | None = None, cursor: str | None = None
) -> Call[models.WebhookAttemptPage]:
    params = _query(limit=limit, cursor=cursor)
    path = f"{API}/webhooks/{webhook_id}/deliveries"
    return Call("GET", path, _one(models.WebhookAttemptPage), params=params)


def redeliver_webhook(
    webhook_id: uuid.UUID | str, delivery_id: uuid.UUID | str
) -> Call[models.Job]:
    path = f"{API}/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"
    return Call("POST", path, _one(models.Job))


# Accounts


def register(email: str, password: str) -> Call[models.User]:
    body = {"email": email, "password": password}
    return Call("POST", f"{API}/auth/register", _one(models.User), json=body)


def log_in(email: str, password: str) -> Call[models.Tokens]:
    form = {"username": email, "password": password}
    return Call("POST", f"{API}/auth/login", _one(models.Tokens), data=form)


def refresh(refresh_token: str) -> Call[models.Tokens]:
    body = {"refresh_token": refresh_token}
    return Call("POST", f"{API}/auth/refresh", _one(models.Tokens), json=body)


def log_out(refresh_token: str) -> Call[None]:
    return Call("POST", f"{API}/auth/logout", _nothing, json={"refresh_token": refresh_token})


def me() -> Call[models.User]:
    return Call("GET", f"{API}/users/me", _one(models.User))
