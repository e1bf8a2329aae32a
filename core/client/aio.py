"""The asyncio client: `AsyncClient(...)`, the same methods as `Client`, awaited."""

from __future__ import annotations

import asyncio
import builtins
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx

from core.client import calls, models
from core.client.auth import choose
from core.client.calls import Call
from core.client.errors import APIError, failed_request, from_response
from core.client.files import FileInput, Progress, Source, source
from core.client.following import RECONNECT_FOR_SECONDS, Following

T = TypeVar("T")
JobId = uuid.UUID | str
# Called before each reconnect of an event stream, with why and how long it waits.
OnRetry = Callable[[APIError, float], None]


class AsyncClient:
    """Talks to one Conveyor deployment over its public API. Authenticate with an
    `api_key`, an access `token`, or any `httpx.Auth`; `tenant_id` acts in that tenant
    (`X-Tenant-ID`) instead of the caller's personal one. Every failed request raises
    `APIError`."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        auth: httpx.Auth | None = None,
        tenant_id: uuid.UUID | str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"X-Tenant-ID": str(tenant_id)} if tenant_id else {}
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            auth=choose(api_key, token, auth),
            headers=headers,
            timeout=timeout,
            transport=transport,
        )
        self.jobs = Jobs(self)
        self.uploads = Uploads(self)
        self.agents = Agents(self)
        self.api_keys = ApiKeys(self)
        self.webhooks = Webhooks(self)
        self.accounts = Accounts(self)

    async def send(self, call: Call[T]) -> T:
        try:
            response = await self._http.request(
                call.method,
                call.path,
                params=call.params,
                json=call.json,
                data=call.data,
                files=call.files,
                headers=call.headers,
            )
            if call.download and response.is_redirect:
                # To storage, with none of this client's headers (its tenant, its auth).
                async with httpx.AsyncClient(timeout=self._http.timeout) as storage:
                    response = await storage.get(response.headers["location"])
        except httpx.RequestError as exc:
            raise failed_request(exc) from exc
        if response.is_error:
            raise from_response(response)
        return calls.read(call, response)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _follow(
        self, job_id: JobId, following: Following, on_retry: OnRetry | None
    ) -> AsyncIterator[models.JobEvent]:
        path = calls.job_events(job_id).path
        while not following.done:
            try:
                async for event in self._stream_once(path, following):
                    yield event
                if following.done:
                    return
                # A stream that ended without the job's end: if the job has ended
                # anyway (its last event came before `after`, or the stream was cut
                # just then), the listing has whatever is left.
                if (await self.send(calls.get_job(job_id))).finished:
                    async for event in self._rest(job_id, following):
                        yield event
                    return
                error = following.ended_early()
            except APIError as exc:
                error = exc
            pause = following.pause(error)
            if on_retry is not None:
                on_retry(error, pause)
            await asyncio.sleep(pause)

    async def _rest(self, job_id: JobId, following: Following) -> AsyncIterator[models.JobEvent]:
        after = following.last
        while True:
            page = await self.send(calls.job_events(job_id, after=after, limit=1000))
            for item in page.items:
                if (event := following.take(item)) is not None:
                    yield event
            # Not by `items`: a page of events hidden from the caller is empty.
            if page.next_after <= after:
                return
            after = page.next_after

    async def _stream_once(self, path: str, following: Following) -> AsyncIterator[models.JobEvent]:
        try:
            async with self._http.stream(
                "GET", path, headers=following.request_headers(), timeout=following.timeout()
            ) as response:
                if response.is_error:
                    await response.aread()
                    raise from_response(response)
                following.connected()
                async for line in response.aiter_lines():
                    event = following.line(line)
                    if event is not None:
                        yield event
                    if following.done:
                        return
        except httpx.RequestError as exc:
            raise failed_request(exc) from exc


async def _async_chunks(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


class Jobs:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def submit(
        self,
        kind: str,
        input: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        delay_seconds: float | None = None,
        run_after: datetime | None = None,
    ) -> models.Job:
        return await self._client.send(
            calls.submit_job(
                kind,
                input,
                idempotency_key=idempotency_key,
                delay_seconds=delay_seconds,
                run_after=run_after,
            )
        )

    async def submit_batch(self, jobs: Sequence[Mapping[str, Any]]) -> list[models.BatchItem]:
        """Up to 1,000 jobs, each `{kind, input}` with an optional `idempotency_key`,
        `delay_seconds` or `run_after`; one answer per job, in order."""
        return await self._client.send(calls.submit_batch(jobs))

    async def get(self, job_id: JobId) -> models.Job:
        return await self._client.send(calls.get_job(job_id))

    async def list(
        self,
        *,
        status: str | None = None,
        kind: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> models.JobPage:
        return await self._client.send(
            calls.list_jobs(status=status, kind=kind, limit=limit, cursor=cursor)
        )

    async def iterate(
        self, *, status: str | None = None, kind: str | None = None, page_size: int = 100
    ) -> AsyncIterator[models.JobSummary]:
        """Every job, newest first, a page at a time."""
        cursor: str | None = None
        while True:
            page = await self.list(status=status, kind=kind, limit=page_size, cursor=cursor)
            for job in page.items:
                yield job
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def events(
        self, job_id: JobId, *, after: int = 0, limit: int | None = None
    ) -> models.EventPage:
        return await self._client.send(calls.job_events(job_id, after=after, limit=limit))

    def stream(
        self,
        job_id: JobId,
        *,
        after: int = 0,
        reconnect_for: float = RECONNECT_FOR_SECONDS,
        on_retry: OnRetry | None = None,
    ) -> AsyncIterator[models.JobEvent]:
        """The job's events with `seq > after` as they happen, until its terminal one.
        A dropped stream reconnects with `Last-Event-ID`: no event is missed or repeated.
        Gives up, raising the last error, after `reconnect_for` seconds without a
        connection or an event."""
        return self._client._follow(job_id, Following(after, reconnect_for, None), on_retry)

    async def wait(
        self,
        job_id: JobId,
        *,
        timeout: float | None = None,
        on_event: Callable[[models.JobEvent], None] | None = None,
        on_retry: OnRetry | None = None,
    ) -> models.Job:
        """Follow the job until it ends and return it; `status` says how it ended.
        Raises TimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        following = Following(0, RECONNECT_FOR_SECONDS, deadline)
        async for event in self._client._follow(job_id, following, on_retry):
            if on_event is not None:
                on_event(event)
        return await self.get(job_id)

    async def cancel(self, job_id: JobId) -> models.Job:
        return await self._client.send(calls.cancel_job(job_id))

    async def kinds(self) -> builtins.list[models.JobKind]:
        return await self._client.send(calls.job_kinds())


class Uploads:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(
        self,
        file: FileInput,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        on_progress: Progress | None = None,
        direct: bool = False,
    ) -> models.UploadCreated:
        """Upload a file; `on_progress(sent, total)` is called as its bytes go out.
        Through the API (streamed multipart), or with `direct` straight to storage at a
        presigned URL, then completed. Answers the upload and its processing job."""
        with source(file, filename, content_type, on_progress) as src:
            if direct:
                return await self._direct(src)
            part = (src.filename, src.reader, src.content_type)
            return await self._client.send(calls.create_upload(part))

    async def _direct(self, src: Source) -> models.UploadCreated:
        presigned = await self._client.send(
            calls.presign_upload(src.filename, src.size, src.content_type)
        )
        # A client of its own: the presigned URL carries its own authority.
        try:
            async with httpx.AsyncClient(timeout=self._client._http.timeout) as storage:
                response = await storage.request(
                    presigned.method,
                    presigned.url,
                    content=_async_chunks(src.chunks()),
                    headers={**presigned.headers, "Content-Length": str(src.size)},
                )
        except httpx.RequestError as exc:
            raise failed_request(exc) from exc
        if response.is_error:
            raise from_response(response)
        return await self._client.send(calls.complete_upload(presigned.upload_id))

    async def complete(self, upload_id: JobId) -> models.UploadCreated:
        return await self._client.send(calls.complete_upload(upload_id))

    async def get(self, upload_id: JobId) -> models.UploadDetail:
        return await self._client.send(calls.get_upload(upload_id))

    async def list(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> models.UploadPage:
        return await self._client.send(calls.list_uploads(limit=limit, cursor=cursor))

    async def content(self, upload_id: JobId) -> bytes:
        return await self._client.send(calls.upload_content(upload_id))

    async def derived(self, upload_id: JobId, name: str) -> bytes:
        return await self._client.send(calls.derived_content(upload_id, name))

    async def delete(self, upload_id: JobId) -> None:
        await self._client.send(calls.delete_upload(upload_id))


class Agents:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def list(self) -> list[models.Workflow]:
        return await self._client.send(calls.list_workflows())

    async def run(
        self, workflow: str, input: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> models.Job:
        """Queue a run; its job's events show the agents, model turns and tool calls."""
        return await self._client.send(
            calls.run_agent(workflow, input, idempotency_key=idempotency_key)
        )


class ApiKeys:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(self, name: str, scopes: Sequence[str]) -> models.ApiKeyCreated:
        return await self._client.send(calls.create_api_key(name, scopes))

    async def list(self) -> list[models.ApiKey]:
        return await self._client.send(calls.list_api_keys())

    async def revoke(self, key_id: JobId) -> None:
        await self._client.send(calls.revoke_api_key(key_id))


class Webhooks:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(
        self,
        url: str,
        events: Sequence[str],
        *,
        kinds: Sequence[str] | None = None,
        description: str = "",
    ) -> models.WebhookCreated:
        return await self._client.send(
            calls.create_webhook(url, events, kinds=kinds, description=description)
        )

    async def list(self) -> list[models.Webhook]:
        return await self._client.send(calls.list_webhooks())

    async def get(self, webhook_id: JobId) -> models.Webhook:
        return await self._client.send(calls.get_webhook(webhook_id))

    async def update(self, webhook_id: JobId, **changes: Any) -> models.Webhook:
        return await self._client.send(calls.update_webhook(webhook_id, **changes))

    async def delete(self, webhook_id: JobId) -> None:
        await self._client.send(calls.delete_webhook(webhook_id))

    async def rotate_secret(self, webhook_id: JobId) -> models.SecretRotated:
        return await self._client.send(calls.rotate_webhook_secret(webhook_id))

    async def send_test(self, webhook_id: JobId) -> models.Job:
        return await self._client.send(calls.send_test_event(webhook_id))

    async def deliveries(
        self, webhook_id: JobId, *, limit: int | None = None, cursor: str | None = None
    ) -> models.WebhookAttemptPage:
        return await self._client.send(
            calls.webhook_deliveries(webhook_id, limit=limit, cursor=cursor)
        )

    async def redeliver(self, webhook_id: JobId, delivery_id: JobId) -> models.Job:
        return await self._client.send(calls.redeliver_webhook(webhook_id, delivery_id))


class Accounts:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def register(self, email: str, password: str) -> models.User:
        return await self._client.send(calls.register(email, password))

    async def log_in(self, email: str, password: str) -> models.Tokens:
        """Tokens for `Client(token=tokens.access_token)`; the refresh token renews them."""
        return await self._client.send(calls.log_in(email, password))

    async def refresh(self, refresh_token: str) -> models.Tokens:
        """A new pair; each refresh token works once."""
        return await self._client.send(calls.refresh(refresh_token))

    async def log_out(self, refresh_token: str) -> None:
        await self._client.send(calls.log_out(refresh_token))

    async def me(self) -> models.User:
        return await self._client.send(calls.me())
